import { createParamDecorator, Logger, UseGuards, UseInterceptors, type ExecutionContext } from '@nestjs/common';
import { graphqlSessions } from '../transports/request-context.js';
import { RequestSessions } from '../lifecycle/request-sessions.js';
import { GatewayConnection } from '../gateways/gateway-connection.js';
import { DEFAULT_SESSION, SESSION_CONTEXT_METADATA, SESSION_NAMES_METADATA } from '../session/session.constants.js';
import { SessionError } from '../session/session.errors.js';
import { SessionLoader } from './session.guard.js';
import { SessionInterceptor } from './session.interceptor.js';
import type {
  Flash as FlashShape,
  FlashMessages,
  Session as SessionShape,
  SessionData,
} from '../session/session.interface.js';

/** The session of the request: `@Session() session: Session`. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Session<T = SessionData> extends SessionShape<T> {}

/** The flash messages of the request's session: `@Flash() flash: Flash`. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface Flash<T = FlashMessages> extends FlashShape<T> {}

const logger = new Logger('SessionModule');
const sessionParam = createParamDecorator((name: string | undefined, context: ExecutionContext) => loadedSession(context, name));
const flashParam = createParamDecorator((name: string | undefined, context: ExecutionContext) => flashOf(loadedSession(context, name)));

/**
 * Injects the request's session (`name`: one of `sessions` in the options; default the unnamed
 * one). Loads it before the handler, on this route only (a per-route guard: the cheapest hook
 * Nest offers); the response saves what changed as it leaves.
 */
export function Session(name?: string): ParameterDecorator {
  return (target, key, index) => {
    sessionParam(name)(target, key, index);
    bindRoute(target, key, name ?? DEFAULT_SESSION, '@Session()');
  };
}

/** Injects the flash messages of the request's session; loaded and saved as for `@Session()`. */
export function Flash(name?: string): ParameterDecorator {
  return (target, key, index) => {
    flashParam(name)(target, key, index);
    bindRoute(target, key, name ?? DEFAULT_SESSION, '@Flash()');
  };
}

/**
 * Loads the session for a route or a controller and runs its handlers where
 * `SessionService.current()` finds it, from any service they call. Also the way back for a route
 * whose `@Session()` binding a method-replacing decorator dropped: put it above that decorator.
 *
 * @param name One of `sessions` in the module's options; default: the default session.
 */
export function UseSession(name: string = DEFAULT_SESSION): MethodDecorator & ClassDecorator {
  return ((target: object, key?: string | symbol, descriptor?: PropertyDescriptor) => {
    const where = descriptor === undefined ? target : (descriptor.value as object);
    const bound = Reflect.getOwnMetadata(SESSION_CONTEXT_METADATA, where) === true;
    addName(where, name);
    if (bound) return;
    Reflect.defineMetadata(SESSION_CONTEXT_METADATA, true, where);
    if (descriptor === undefined) UseInterceptors(SessionInterceptor)(target as new (...args: unknown[]) => unknown);
    else UseInterceptors(SessionInterceptor)(target, key!, descriptor);
  });
}

/** Binds the session loader (a per-route guard) to the route `decorator` decorates a parameter of. */
export function bindRoute(target: object, key: string | symbol | undefined, name: string, decorator: string): void {
  const descriptor = key === undefined ? undefined : Object.getOwnPropertyDescriptor(target, key);
  if (descriptor === undefined || typeof descriptor.value !== 'function') {
    throw new SessionError(`${decorator} decorates a parameter of a route handler method`);
  }
  if (addName(descriptor.value as object, name)) UseGuards(SessionLoader)(target, key!, descriptor);
}

/** Records that `target` asks for session `name`; true the first time it asks for any. */
function addName(target: object, name: string): boolean {
  const names = Reflect.getOwnMetadata(SESSION_NAMES_METADATA, target) as string[] | undefined;
  if (names === undefined) {
    Reflect.defineMetadata(SESSION_NAMES_METADATA, [name], target);
    return true;
  }
  if (!names.includes(name)) Reflect.defineMetadata(SESSION_NAMES_METADATA, [...names, name], target);
  return false;
}

/**
 * The session a parameter gets. On an HTTP route, the one its guard loaded (synchronously: the
 * route's hot path). In a GraphQL resolver, the one of its HTTP request or of its subscription's
 * connection, loaded here if no guard did (field resolvers run without guards by default): Nest
 * awaits a resolver's parameters.
 */
function loadedSession(context: ExecutionContext, name: string | undefined): SessionShape<any> | Promise<SessionShape<any>> {
  const type = context.getType<string>();
  if (type === 'http') {
    const session = RequestSessions.find(context.switchToHttp().getRequest())?.loaded(name ?? DEFAULT_SESSION);
    if (session !== undefined) return session;
    throw missing(
      context,
      `no session was loaded for this parameter. The session loader did not run: a method decorator that replaces the method (wrapping, caching or retry decorators) drops the binding; put @UseSession(${name === undefined ? '' : `'${name}'`}) above it.`,
    );
  }
  if (type === 'ws') {
    // The session interceptor, bound to gateway handlers that ask, loaded it for this message.
    const connection = GatewayConnection.find(context.switchToWs().getClient());
    if (connection !== undefined) return connection.messageOfParameter(context.getArgs()).load(name ?? DEFAULT_SESSION);
    throw missing(
      context,
      'no session was loaded for this gateway handler: SessionModule binds its loader to the message handlers of gateways that are providers of a module when the app starts; a method decorator that replaces the method drops the binding (put @UseSession() above it).',
    );
  }
  const sessions = type === 'graphql' ? graphqlSessions(undefined, context.getArgByIndex(2)) : undefined;
  if (sessions !== undefined) {
    const key = name ?? DEFAULT_SESSION;
    return sessions.loaded(key) ?? sessions.load(key);
  }
  throw missing(
    context,
    type === 'graphql'
      ? "this GraphQL context carries no HTTP request and response (req, res or reply) and no subscription connection, so there is no session here: a context function of your own must keep req (Apollo: for subscriptions, the graphql-ws context Nest gives as req; or, with req set to extra.request, keep graphql-ws' extra beside it) or reply (Mercurius)."
      : `sessions are supported in HTTP routes, GraphQL resolvers and WebSocket gateways; a '${type}' handler has no HTTP request to carry a session cookie.`,
  );
}

function flashOf(session: SessionShape<any> | Promise<SessionShape<any>>) {
  return session instanceof Promise ? session.then((loaded) => loaded.flash) : session.flash;
}

/** What the client reads: the cause is the app's, and its detail stays in the server log. */
const MISSING_MESSAGE = 'No session is available here; the server log says why.';

/** The causes logged so far, per handler: one line per handler and cause, not one per call a client can repeat. */
const logged = new WeakMap<object, Set<string>>();

function missing(context: ExecutionContext, reason: string): SessionError {
  const handler = context.getHandler();
  const detail = `${context.getClass().name}.${handler.name}: ${reason}`;
  let causes = logged.get(handler);
  if (causes === undefined) logged.set(handler, (causes = new Set()));
  // An HttpException is not logged by Nest, and this one is a bug to fix: say it where it shows.
  if (!causes.has(detail)) {
    causes.add(detail);
    logger.error(detail);
  }
  // The detail rides as the cause, for the app's own logging; the client's body never shows it.
  return new SessionError(MISSING_MESSAGE, undefined, { cause: new Error(detail) });
}
