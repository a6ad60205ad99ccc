import { DEFAULT_SESSION, SESSION_CONTEXT_METADATA, SESSION_NAMES_METADATA } from '../session/session.constants.js';

/** What a route asks of the session module, read from its metadata once. */
export interface RouteInfo {
  /** The sessions to load before the handler runs. */
  readonly names: readonly string[];
  /**
   * Run the handler inside the AsyncLocalStorage context that `SessionService.current()` reads
   * (`@UseSession()`, or `interceptor: 'global'`). Only there: on Node 20, once any context runs,
   * every promise of the process pays for it.
   */
  readonly context: boolean;
  /** The handler or its class asks for a session itself (not only through `interceptor: 'global'`). */
  readonly asked: boolean;
}

export function routeInfoOf(handler: object, controller: object, globalContext: boolean): RouteInfo {
  const names = new Set<string>([...sessionNamesOf(handler), ...sessionNamesOf(controller)]);
  const asked = names.size > 0;
  if (names.size === 0) names.add(DEFAULT_SESSION);
  const marked = Reflect.getMetadata(SESSION_CONTEXT_METADATA, handler) === true || Reflect.getMetadata(SESSION_CONTEXT_METADATA, controller) === true;
  return { names: [...names], context: globalContext || marked, asked: asked || marked };
}

/** The session names a handler or a controller asks for through the decorators. */
export function sessionNamesOf(target: object): readonly string[] {
  return (Reflect.getMetadata(SESSION_NAMES_METADATA, target) as string[] | undefined) ?? [];
}

/**
 * What is read from a route's metadata, once per handler of each controller (an inherited handler
 * serves controllers that may ask for other things), kept as long as both live.
 */
export class PerRoute<T> {
  private readonly byController = new WeakMap<object, WeakMap<object, T>>();

  constructor(private readonly read: (handler: object, controller: object) => T) {}

  get(handler: object, controller: object): T {
    let handlers = this.byController.get(controller);
    if (handlers === undefined) {
      handlers = new WeakMap();
      this.byController.set(controller, handlers);
    }
    let value = handlers.get(handler);
    if (value === undefined) {
      value = this.read(handler, controller);
      handlers.set(handler, value);
    }
    return value;
  }
}
