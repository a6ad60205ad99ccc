import { DEFAULT_SESSION, SESSION_CONTEXT_METADATA, SESSION_NAMES_METADATA } from './session.constants.js';

/** What a route asks of the session interceptor, read from its metadata once. */
export interface RouteInfo {
  /** The sessions to load before the handler runs. */
  readonly names: readonly string[];
  /**
   * The handler writes the response itself (`@Res()` or `@Next()` without passthrough, `@Sse()`):
   * the interceptor cannot save after it, so the response saves itself.
   */
  readonly writesResponse: boolean;
  /**
   * Run the handler inside the AsyncLocalStorage context that `SessionService.current()` reads
   * (`@UseSession()`, or `interceptor: 'global'`). Only there: on Node 20, once any context runs,
   * every promise of the process pays for it.
   */
  readonly context: boolean;
}

// Nest's own metadata keys and param types, stable across Nest 11 and 12 (deep imports are not).
const ROUTE_ARGS_METADATA = '__routeArguments__';
const RESPONSE_PASSTHROUGH_METADATA = '__responsePassthrough__';
const SSE_METADATA = '__sse__';
const RESPONSE_PARAM = 1;
const NEXT_PARAM = 2;

export function routeInfoOf(handler: object, controller: object, globalContext: boolean): RouteInfo {
  const names = new Set<string>([
    ...((Reflect.getMetadata(SESSION_NAMES_METADATA, handler) as string[] | undefined) ?? []),
    ...((Reflect.getMetadata(SESSION_NAMES_METADATA, controller) as string[] | undefined) ?? []),
  ]);
  if (names.size === 0) names.add(DEFAULT_SESSION);
  const context =
    globalContext ||
    Reflect.getMetadata(SESSION_CONTEXT_METADATA, handler) === true ||
    Reflect.getMetadata(SESSION_CONTEXT_METADATA, controller) === true;
  return { names: [...names], writesResponse: writesResponse(handler, controller), context };
}

function writesResponse(handler: object, controller: object): boolean {
  if (Reflect.getMetadata(SSE_METADATA, handler) !== undefined) return true;
  const method = (handler as { name?: string }).name;
  if (method === undefined || method === '') return false;
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, controller, method) as Record<string, unknown> | undefined;
  if (args === undefined) return false;
  const takesResponse = Object.keys(args).some((key) => {
    const type = Number(key.split(':')[0]);
    return type === RESPONSE_PARAM || type === NEXT_PARAM;
  });
  return takesResponse && Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, controller, method) !== true;
}
