import { Injectable, type ArgumentsHost, type ExecutionContext } from '@nestjs/common';
import { graphqlSessions, isGraphqlContext, sessionsOf } from '../transports/request-context.js';
import { RequestSessions } from '../lifecycle/request-sessions.js';
import { GatewayConnection } from '../gateways/gateway-connection.js';
import type { GatewayMessage } from '../gateways/socket-message.js';
import { isSocketClient } from '../gateways/socket-client.js';
import type { SessionSource } from '../lifecycle/session-source.js';
import { DEFAULT_SESSION } from '../session/session.constants.js';
import { SessionEngine } from '../lifecycle/session-engine.js';
import { reported, SessionError } from '../session/session.errors.js';
import type { Session, SessionData } from '../session/session.interface.js';
import type { AnySessionStore } from '../stores/session-store.interface.js';
import { UserSessions, type EndSessionOptions, type EndSessionsOptions, type UserOrSession, type UserSessionInfo, type UserSessionsOptions } from '../user-sessions/user-sessions.js';

/** Sessions for guards, pipes, filters, middleware and services. */
@Injectable()
export class SessionService {
  private users: UserSessions | undefined;

  /** @internal Nest's injector creates it. */
  constructor(private readonly engine: SessionEngine) {}

  /**
   * The session of a request, loaded once: a guard, the handler's `@Session()` and an exception
   * filter all get the same object, and whatever any of them changes is saved as the response
   * leaves. Pass the `ExecutionContext` or `ArgumentsHost` (on Fastify the request alone does not
   * lead to its response), of an HTTP route or a GraphQL resolver; or a GraphQL context object
   * (`@Context()`); or, on Express, the request. In a gateway: the `ExecutionContext` of a message
   * handler or its guard, or the client socket itself (in `handleConnection`), read fresh from the
   * store once per message (the same object for the message's guards and handler, and for the
   * socket in a handler marked `@UseSession()`); elsewhere, at every call, and saved on its own
   * where no handler saves it. In a GraphQL
   * subscription: the session of the request that opened its connection, read-only.
   *
   * @param name One of `sessions` in the module's options; default: the default session.
   */
  async load<T = SessionData>(contextOrRequest: ExecutionContext | ArgumentsHost | object, name: string = DEFAULT_SESSION): Promise<Session<T>> {
    const gateway = this.gatewayLoad(contextOrRequest, name);
    if (gateway !== undefined) return (await gateway) as Session<any>;
    const sessions = this.requestSessions(contextOrRequest);
    this.engine.definition(name);
    return sessions.load(name) as Session<T> | Promise<Session<T>>;
  }

  /**
   * The session of the request being served, from anywhere in its call tree, on routes marked
   * `@UseSession()` (or every route with `interceptor: 'global'`); undefined elsewhere, and in
   * guards, which run before interceptors.
   *
   * @param name One of `sessions` in the module's options; default: the default session.
   */
  current<T = SessionData>(name: string = DEFAULT_SESSION): Session<T> | undefined {
    return this.engine.context.getStore()?.loaded(name) as Session<T> | undefined;
  }

  /** A gateway's context or client socket: its connection's session; undefined for anything else. */
  private gatewayLoad(value: object, name: string): ReturnType<GatewayMessage['load']> | undefined {
    const host = value as Partial<ArgumentsHost>;
    let client: unknown;
    let args: unknown[] | undefined;
    if (typeof host.getType === 'function' && typeof host.switchToWs === 'function') {
      if (host.getType() !== 'ws') return undefined;
      client = host.switchToWs().getClient();
      args = host.getArgs!();
    } else if (isSocketClient(value)) {
      client = value;
    } else {
      return undefined;
    }
    const connection = GatewayConnection.of(this.engine, client);
    if (connection === undefined) {
      throw reported(new SessionError('SessionService.load(context): this gateway client is neither a socket.io socket nor a ws WebSocket; sessions are read from their handshake'));
    }
    return connection.message(args).load(name);
  }

  private requestSessions(value: ExecutionContext | ArgumentsHost | object): SessionSource {
    const host = value as Partial<ArgumentsHost>;
    if (typeof host.getType === 'function' && typeof host.switchToHttp === 'function') {
      const sessions = sessionsOf(this.engine, host as ArgumentsHost);
      if (sessions !== undefined) return sessions;
      const type = host.getType<string>();
      throw reported(new SessionError(
        type === 'graphql'
          ? 'SessionService.load(context): this GraphQL context carries no HTTP request and response (req, res or reply) and no subscription connection: a context function of your own must keep req (Apollo: for subscriptions, the graphql-ws context Nest gives as req) or reply (Mercurius)'
          : `SessionService.load(context): sessions are supported in HTTP routes and GraphQL resolvers; a '${type}' context has no HTTP request to carry a session cookie`,
      ));
    }
    if (isGraphqlContext(value)) {
      const sessions = graphqlSessions(this.engine, value);
      if (sessions !== undefined) return sessions;
    }
    const req = value as { res?: unknown };
    if (req.res === undefined) {
      throw reported(new SessionError('SessionService.load(request): this request does not lead to its response; pass the ExecutionContext instead (a guard has it as its first argument)'));
    }
    // Nothing in a request alone says that GraphQL answers it (a REST body may carry a `query`): an
    // error sent instead of its response is shaped as GraphQL only where a resolver's context asked.
    return RequestSessions.of(this.engine, req, req.res);
  }

  /**
   * The live sessions of a user (tied by `session.setUser()`), most recently seen first, each with
   * a `handle` for `endSession()`. Pass the session the route holds (`sessionsOf(session)`: its
   * user, and `current` marks it), or a user id (`current` then marks the session of the request
   * being served on routes marked `@UseSession()`). `{ session: 'admin' }` looks in another
   * configured session. A session tied to no user lists nothing. Throws `SessionSupportError` on a
   * store that cannot list them (the cookie store, a custom store without `listByUser()`).
   */
  sessionsOf(userOrSession: UserOrSession, options?: UserSessionsOptions): Promise<UserSessionInfo[]> {
    return (this.users ??= new UserSessions(this.engine)).list(userOrSession, options);
  }

  /**
   * Ends every session of a user (sign out everywhere), or every one but one (`{ except: 'current' }`:
   * the session given, `endSessionsOf(session, { except: 'current' })`, or the request's on a route
   * marked `@UseSession()`; or `{ except: session }`): removed from the store, and their sockets and
   * subscriptions in this process closed. Resolves to how many were ended. Throws
   * `SessionSupportError` where `sessionsOf()` does.
   */
  endSessionsOf(userOrSession: UserOrSession, options?: EndSessionsOptions): Promise<number> {
    return (this.users ??= new UserSessions(this.engine)).endAll(userOrSession, options);
  }

  /**
   * Ends the session a `handle` from `sessionsOf()` names. Resolves to true when it ended a live
   * session, false when the handle is stale (that session has ended, or is no longer tied to the
   * same user) or not one this app issued for this session name (forged, mangled, another secret).
   *
   * Pass `{ user }` (the user signed in on the request, `session.user`) where a handle comes from a
   * client: a handle of another user's session then ends nothing and answers false (as do
   * `{ user: undefined }` and `{}`). `{ session: 'admin' }` names another configured session.
   * Without options, anyone holding a handle can end that session: the caller must have checked
   * that it may. A second argument that is not an options object (a user id or a session name as it
   * is, `undefined`) ends nothing.
   */
  endSession(handle: string, options?: EndSessionOptions): Promise<boolean>;
  endSession(handle: string, ...args: unknown[]): Promise<boolean> {
    return (this.users ??= new UserSessions(this.engine)).end(handle, args);
  }

  /**
   * The store of a session, e.g. to destroy sessions outside a request.
   *
   * @param name One of `sessions` in the module's options; default: the default session.
   */
  store(name: string = DEFAULT_SESSION): AnySessionStore {
    return this.engine.definition(name).store;
  }
}
