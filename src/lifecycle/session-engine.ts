import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, Logger, Optional, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { DEFAULT_SESSION, SESSION_MODULE_OPTIONS } from '../session/session.constants.js';
import { CLIENT_STORE_MESSAGE, reported, SessionError, SessionStoreError } from '../session/session.errors.js';
import type { SessionModuleOptions } from '../nest/session.options.js';
import { resolveSessions, type SessionDefinition } from '../session/session-definition.js';
import type { MaybePromise, SessionStore } from '../stores/session-store.interface.js';
import type { SessionState } from '../session/session.js';
import type { CompanionCookie } from './response-cookies.js';
import type { SavePlan } from './save-plan.js';
import { isThenable } from './thenable.js';
import type { Session } from '../session/session.interface.js';
import { SessionConnections } from './session-connections.js';
import { registerEngine } from '../transports/request-context.js';
import { PerRoute, routeInfoOf, type RouteInfo } from '../nest/route-info.js';
import { SessionMigration } from '../migration/session-migration.js';
import { SessionTelemetry } from '../observability/session-telemetry.js';


/** Where a session is served from, as `SessionService.current()` sees it: a request, or a socket's message. */
export interface SessionScope {
  loaded(name: string): Session<any> | undefined;
}

/**
 * Loads and saves sessions: `read` and `plan`/`perform` are the one load and the one save that
 * every way of reaching a session goes through.
 */
@Injectable()
export class SessionEngine implements OnModuleInit, OnApplicationShutdown {
  /** The request (or the socket's message) being served, for `SessionService.current()`. */
  readonly context = new AsyncLocalStorage<SessionScope>();
  readonly definitions: ReadonlyMap<string, SessionDefinition>;
  readonly logger = new Logger('SessionModule');
  /** What each route asks for. */
  private readonly routes = new PerRoute<RouteInfo>((handler, controller) => {
    const info = routeInfoOf(handler, controller, this.globalContext);
    for (const name of info.names) this.definition(name);
    return info;
  });
  private readonly writes = new Set<Promise<unknown>>();
  /** Sockets and subscriptions hanging on stored sessions here: ended with their session. */
  readonly connections = new SessionConnections();
  /** `interceptor: 'global'`: every route runs in the context `current()` reads. */
  private readonly globalContext: boolean;
  /** `migrateFrom`: sessions of the library the app comes from, moved into the default session. */
  readonly migration: SessionMigration | undefined;
  /** Some session has `userVersion`: a session tied in a request gets the user's version before it is saved. */
  readonly versioned: boolean;
  /** Set by the CSRF protection in cookie mode: the readable cookie that goes out with the default session's. */
  companion: CompanionCookie | undefined;
  /** `telemetry: true`: OpenTelemetry spans and counters; undefined otherwise, and `@opentelemetry/api` is never loaded. */
  readonly telemetry: SessionTelemetry | undefined;

  constructor(
    @Inject(SESSION_MODULE_OPTIONS) options: SessionModuleOptions | undefined,
    @Optional() private readonly adapterHost?: HttpAdapterHost,
  ) {
    const resolved = resolveSessions(options ?? {});
    this.definitions = resolved.definitions;
    this.globalContext = options?.interceptor === 'global';
    const source: unknown = options?.migrateFrom;
    if (source !== undefined) {
      SessionMigration.check(source, this.definitions);
      this.migration = new SessionMigration(this, source, this.definitions.get(DEFAULT_SESSION)!);
    }
    this.versioned = [...this.definitions.values()].some((def) => def.userVersion !== undefined);
    this.telemetry = SessionTelemetry.from(options?.telemetry);
    if (resolved.ephemeralSecret) {
      this.logger.warn(
        `No secret set: session cookies are signed with a random secret for this process only, so sessions end at every restart and cannot be shared between instances. ${resolved.secretAdvice}.`,
      );
    }
  }

  /** The app's requests lead here (see `registerEngine`); the HTTP adapter is known by now. */
  onModuleInit(): void {
    const adapter = this.adapterHost?.httpAdapter as { getInstance?: () => unknown; getHttpServer?: () => unknown } | undefined;
    if (typeof adapter?.getInstance === 'function') registerEngine(adapter.getInstance(), this);
    // The upgrade requests of GraphQL subscriptions lead to their HTTP server only.
    if (typeof adapter?.getHttpServer === 'function') registerEngine(adapter.getHttpServer(), this);
  }

  definition(name: string): SessionDefinition {
    const def = this.definitions.get(name);
    if (def === undefined) {
      throw reported(new SessionError(
        `No session named '${name}' is configured; add sessions: { ${name}: { ... } } to SessionModule.forRoot()`,
      ));
    }
    return def;
  }

  /** What a route asks for, read from its metadata once. */
  route(handler: object, controller: object): RouteInfo {
    return this.routes.get(handler, controller);
  }

  /**
   * `userVersion`: records the user's version in a session just tied to them (before it is saved).
   * The tie is left alone if it changed meanwhile.
   */
  stampVersion(session: SessionState): MaybePromise<void> {
    session.versionDue = false;
    const tie = session.meta.user;
    const def = session.definition;
    if (tie === undefined || def.userVersion === undefined) return undefined;
    const stamp = (version: string | number | undefined) => {
      if (session.meta.user !== tie) return;
      const { version: _old, ...rest } = tie;
      session.refreshUser(version === undefined || version === null ? rest : { ...rest, version: String(version) });
    };
    const current = this.call(def, "read the user's version (userVersion)", () => def.userVersion!(tie.id));
    if (isThenable(current)) return Promise.resolve(current).then(stamp);
    stamp(current);
    return undefined;
  }

  /**
   * Makes the store call of a plan; the session's stored state moves on only once the store has
   * confirmed it. A promise only when there is a write to wait for.
   */
  perform(plan: SavePlan): Promise<void> | undefined {
    // A schema answering with a promise has the last word before the store call.
    if (plan.check !== undefined) return plan.check.then(() => this.performChecked(plan));
    return this.performChecked(plan);
  }

  private performChecked(plan: SavePlan): Promise<void> | undefined {
    const { session, write, id } = plan;
    if (write === undefined) return undefined;
    const def = session.definition;
    let result: MaybePromise<void> = undefined;
    if (plan.kind === 'create') result = this.call(def, 'save a session', (store) => store.set(id, plan.record!));
    else if (plan.kind === 'update') result = this.call(def, 'save a session', (store) => store.patch(id, plan.patch!));
    else if (plan.kind === 'touch') result = this.call(def, 'touch a session', (store) => store.touch(id, write.expiresAt));
    if (!isThenable(result)) {
      session.confirm(write);
      this.telemetry?.saved(def, plan.kind);
      return undefined;
    }
    session.writing++;
    const done = Promise.resolve(result).then(
      () => {
        session.writing--;
        session.confirm(write);
        this.telemetry?.saved(def, plan.kind);
      },
      (error: unknown) => {
        session.writing--;
        this.telemetry?.saveFailed(def, plan.kind);
        throw error;
      },
    );
    return this.tracked(done);
  }

  /**
   * Removes a stored session at once (regenerate, destroy); once the store confirms, the connections
   * hanging on it in this process (sockets, subscriptions) are ended, unless the caller ends them
   * itself later (`endConnections: false`).
   */
  destroy(def: SessionDefinition, id: string, endConnections = true): Promise<void> | undefined {
    if (def.clientSide) return undefined;
    const done = this.call(def, 'destroy a session', (store) => store.destroy(id));
    if (!isThenable(done)) {
      if (endConnections) this.connections.end(def.name, id);
      return undefined;
    }
    const destroyed = endConnections ? Promise.resolve(done).then(() => this.connections.end(def.name, id)) : Promise.resolve(done);
    return this.tracked(destroyed);
  }

  /** A store write in flight, awaited by the shutdown (`app.close()`) before the stores close. */
  private tracked<T>(write: Promise<T>): Promise<T> {
    this.writes.add(write);
    const forget = () => void this.writes.delete(write);
    write.then(forget, forget);
    return write;
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([...this.writes]);
    const closed = new Set<unknown>();
    for (const def of this.definitions.values()) {
      if (closed.has(def.store)) continue;
      closed.add(def.store);
      try {
        await def.store.close?.();
      } catch (error) {
        this.logger.error(`Closing the store of session '${def.name}' failed: ${(error as Error)?.message}`);
      }
    }
  }

  /**
   * Calls the store (or, naming it in `whose`, another back-end the session depends on); a failure
   * or a timeout becomes a logged `SessionStoreError`. With telemetry, a store call runs in a span.
   */
  call<T>(def: SessionDefinition, what: string, operation: (store: SessionStore) => MaybePromise<T> | PromiseLike<T>, whose?: string): MaybePromise<T> {
    if (this.telemetry !== undefined) return this.telemetry.call(def, what, whose, () => this.bounded(def, what, operation, whose));
    return this.bounded(def, what, operation, whose);
  }

  /** `call` without telemetry: the store call, bounded by `storeTimeout`. */
  private bounded<T>(def: SessionDefinition, what: string, operation: (store: SessionStore) => MaybePromise<T> | PromiseLike<T>, whose?: string): MaybePromise<T> {
    let result: MaybePromise<T>;
    try {
      // Outside the request's context: what a store creates lazily (a connection, a cached promise)
      // must not keep the first request that happened to trigger it alive. Only when there is one:
      // leaving a context costs every store call on Node 20.
      const store = def.store as SessionStore;
      result = this.context.getStore() === undefined ? operation(store) : this.context.exit(operation, store);
    } catch (error) {
      return Promise.reject(this.storeError(def, what, error, whose));
    }
    if (!isThenable(result)) return result;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.storeError(def, what, timeoutError(def.storeTimeout), whose)), def.storeTimeout);
      Promise.resolve(result).then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(this.storeError(def, what, error, whose));
        },
      );
    });
  }

  private storeError(def: SessionDefinition, what: string, cause: unknown, whose = `The store of session '${def.name}'`): SessionStoreError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const message = `${whose} failed to ${what}: ${reason}`;
    this.logger.error(message);
    // The details are logged here; the error itself names no host, path or driver error, since some
    // clients see an error's message (GraphQL answers resolvers' errors with it).
    return new SessionStoreError(CLIENT_STORE_MESSAGE, { cause: new Error(message, { cause }) });
  }
}

/** A store that did not answer in time (`TimeoutError`, as telemetry reports it). */
function timeoutError(ms: number): Error {
  const error = new Error(`no answer within ${ms} ms`);
  error.name = 'TimeoutError';
  return error;
}
