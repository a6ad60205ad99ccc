import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, Logger, Optional, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { DEFAULT_SESSION, isInternalKey, SESSION_MODULE_OPTIONS, TOUCH_FRACTION } from '../session/session.constants.js';
import { CLIENT_STORE_MESSAGE, reported, SessionError, SessionStoreError, SessionTooLargeError } from '../session/session.errors.js';
import type { SessionModuleOptions } from '../nest/session.options.js';
import { resolveSessions, type SessionDefinition } from '../session/session-definition.js';
import { isUserTie, type ClientSessionStore, type MaybePromise, type SessionPatch, type SessionRecord, type SessionStore, type SessionUser } from '../stores/session-store.interface.js';
import { SessionState, type PendingWrite, type SessionHost } from '../session/session.js';
import type { CompanionCookie, RequestSessions } from './request-sessions.js';
import type { SessionReader } from './session-source.js';
import type { Session } from '../session/session.interface.js';
import { SessionConnections } from './session-connections.js';
import { registerEngine } from '../transports/request-context.js';
import { routeInfoOf, type RouteInfo } from '../nest/route-info.js';
import { SessionMigration } from '../migration/session-migration.js';
import type { IssueSet } from '../schema/session-schema.js';

/**
 * One session's part of a save, decided for every session of the request before any of them is
 * written: a session that cannot be saved (too large for its cookie, a value JSON cannot hold)
 * stops the save before anything reaches a store.
 */
export interface SavePlan {
  readonly session: SessionState;
  /** The store call to make; undefined when only a cookie is sent. */
  readonly kind: 'create' | 'update' | 'touch' | undefined;
  readonly id: string;
  readonly write: PendingWrite | undefined;
  readonly record: SessionRecord | undefined;
  readonly patch: SessionPatch | undefined;
  /** The `Set-Cookie` value to send with the response's head. */
  readonly cookie: string | undefined;
  /** A schema answering with a promise: nothing of the request may be written before it resolves. */
  readonly check?: Promise<void>;
}

/** Where a session is served from, as `SessionService.current()` sees it: a request, or a socket's message. */
export interface SessionScope {
  loaded(name: string): Session<any> | undefined;
}

/** Whom a session's cookie would be sent to. */
export interface CookieTarget {
  isSecure(): boolean;
  /** The client's `User-Agent` and address, recorded for a session tied to a user (absent: unknown here). */
  userAgent?(): string | undefined;
  clientIp?(): string | undefined;
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
  /** Controller → handler → what the route asks for: an inherited handler serves controllers that may ask for other sessions. */
  private readonly routes = new WeakMap<object, WeakMap<object, RouteInfo>>();
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
    if (resolved.ephemeralSecret) {
      this.logger.warn(
        'No secret set: session cookies are signed with a random secret for this process only, so sessions end at every restart and cannot be shared between instances. Set secret (32+ characters) in SessionModule.forRoot().',
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
    let handlers = this.routes.get(controller);
    if (handlers === undefined) {
      handlers = new WeakMap();
      this.routes.set(controller, handlers);
    }
    let info = handlers.get(handler);
    if (info === undefined) {
      info = routeInfoOf(handler, controller, this.globalContext);
      for (const name of info.names) this.definition(name);
      handlers.set(handler, info);
    }
    return info;
  }

  /**
   * `userVersion`: a tied session whose recorded version is not the user's version now was ended
   * by the app (sign out everywhere): it reads as no session, and a server-side one is destroyed.
   */
  private checkVersion(def: SessionDefinition, host: SessionHost, session: SessionState): SessionState | Promise<SessionState> {
    const tie = session.meta.user;
    if (tie === undefined || !session.stored) return session;
    const current = this.call(def, "read the user's version (userVersion)", () => def.userVersion!(tie.id));
    const decide = (version: string | number | undefined): SessionState | Promise<SessionState> => {
      if (version !== undefined && version !== null && String(version) === tie.version) return session;
      const fresh = () => new SessionState(def, host);
      const destroyed = this.destroy(def, session.id);
      return isThenable(destroyed) ? Promise.resolve(destroyed).then(fresh) : fresh();
    };
    return isThenable(current) ? Promise.resolve(current).then(decide) : decide(current);
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

  /** The session a request's cookie points to, or a fresh one; never adopts an id the store does not know. */
  read(def: SessionDefinition, request: SessionReader): SessionState | Promise<SessionState> {
    const value = request.incomingCookie(def);
    if (value === undefined) {
      // Only a request without a cookie of ours looks for the cookie of the library the app comes from.
      // Over HTTP only: the migrated session's cookie needs a response (a subscription's socket has none).
      if (this.migration !== undefined && def === this.migration.definition && canMigrate(request)) {
        const old = request.cookie(this.migration.source.cookieName);
        if (old !== undefined) return this.migration.migrate(request, old);
      }
      return new SessionState(def, request);
    }
    if (def.clientSide) {
      const opened = (def.store as ClientSessionStore).open(value);
      const record = opened === undefined ? undefined : checked(opened.record, def);
      if (record === undefined) return new SessionState(def, request);
      const open = (): SessionState => {
        const session = new SessionState(def, request, opened!.id, record);
        // The cookie it came in tells its size: a few bytes of margin for a longer expiry.
        session.sizeHeadroom = def.cookieLimit - (def.cookieName.length + 1 + value.length) - 16;
        return session;
      };
      return this.checkedVersion(def, request, matching(def, request, record, open));
    }
    const signed = def.signer.unsign(value);
    if (signed === undefined) return new SessionState(def, request);
    return this.readStored(def, request, signed[0], signed[1], value);
  }

  /**
   * The session stored under `id`, whose cookie `cookieValue` was verified (`currentKey`: with the
   * current secret), held by `host`; a fresh one when the store does not know it.
   */
  readStored(def: SessionDefinition, host: SessionHost, id: string, currentKey: boolean, cookieValue: string): SessionState | Promise<SessionState> {
    const found = this.call(def, 'read a session', (store) => store.get(id));
    if (isThenable(found)) return Promise.resolve(found).then((record) => this.checkedVersion(def, host, adopt(def, host, id, currentKey, cookieValue, record)));
    return this.checkedVersion(def, host, adopt(def, host, id, currentKey, cookieValue, found));
  }

  /** The session, checked against its user's version when `userVersion` is set. */
  checkedVersion(def: SessionDefinition, host: SessionHost, session: SessionState | Promise<SessionState>): SessionState | Promise<SessionState> {
    if (def.userVersion === undefined) return session;
    return session instanceof Promise ? session.then((loaded) => this.checkVersion(def, host, loaded)) : this.checkVersion(def, host, session);
  }

  /**
   * What saving `session` now takes: the store call and the cookie. Changes nothing that a failed
   * write would have to undo; throws `SessionTooLargeError` or `SessionValidationError` when the
   * session cannot be saved. `headersSent`: no cookie can go out any more.
   */
  plan(session: SessionState, request: CookieTarget, headersSent: boolean): SavePlan | undefined {
    const def = session.definition;
    if (!session.stored && !session.hasContent()) {
      // Nothing to store; a destroyed session still owes the client a cleared cookie.
      if (!session.destroyed || headersSent) return undefined;
      session.destroyed = false;
      return cookieOnly(session, def.secureAuto && !request.isSecure() ? def.clearCookieInsecure : def.clearCookie);
    }
    const now = Date.now();
    let changes = session.changes();
    let kind: SavePlan['kind'] = !session.stored ? 'create' : changes !== undefined ? 'update' : touchDue(session, now) ? 'touch' : undefined;
    const expiresAt = kind === undefined ? session.storedExpiresAt : session.nextExpiry(now);
    if (kind === undefined || (kind === 'touch' && expiresAt <= session.storedExpiresAt)) {
      session.touchRequested = false;
      if (!session.signedWithOldKey || headersSent) return undefined;
      // Nothing to write, but a cookie signed with an old key is replaced.
      session.signedWithOldKey = false;
      return cookieOnly(session, this.cookie(session, request, this.signedValue(session), expiresAt, now));
    }
    if (headersSent && (def.clientSide || kind === 'create')) {
      // Its cookie can no longer reach the client: writing would only make an orphan.
      this.logger.warn(`Session '${def.name}' changed after the response's head was sent; the change is not saved (save before streaming a response)`);
      return undefined;
    }
    const tie = session.meta.user;
    if (tie !== undefined && !def.clientSide) {
      // A tied session's write says when and from where it was last seen: at the touch cadence
      // for a read-only request, so no read becomes a write for it.
      session.refreshUser(seen(def, tie, request, now));
      changes = session.changes();
      if (kind === 'touch') kind = 'update';
    }
    // The data that changed must match the schema as a whole before anything of the request is written.
    const check = def.schema !== undefined && changes !== undefined && changesData(changes) ? def.schema.checkSave(session.dataAfter(changes)) : undefined;
    check?.catch(() => undefined); // awaited by the save; a plan dropped by a later error must not leave it unhandled
    const id = session.id;
    if (def.clientSide) {
      const record = session.record(expiresAt, changes);
      const value = (def.store as ClientSessionStore).seal(id, record);
      this.checkCookieSize(session, def.cookieName.length + 1 + value.length);
      return {
        session,
        kind: undefined,
        id,
        write: session.pending(expiresAt, changes, record.data),
        record: undefined,
        patch: undefined,
        cookie: this.cookie(session, request, value, expiresAt, now),
        check,
      };
    }
    const record = kind === 'create' ? session.record(expiresAt, changes) : undefined;
    const patch = kind === 'update' ? { ...changes!, expiresAt } : undefined;
    // A new id, an old key, a sliding Max-Age, or a lifetime that changed (also back to a browser-session cookie).
    const resend =
      kind === 'create' || session.signedWithOldKey || session.meta.maxAge !== undefined || def.cookieMaxAge !== undefined || changes?.maxAge !== undefined;
    return {
      session,
      kind,
      id,
      write: session.pending(expiresAt, changes, record?.data),
      record,
      patch,
      cookie: resend && !headersSent ? this.cookie(session, request, this.signedValue(session), expiresAt, now) : undefined,
      check,
    };
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
      return undefined;
    }
    session.writing++;
    const done = Promise.resolve(result).then(
      () => {
        session.writing--;
        session.confirm(write);
      },
      (error: unknown) => {
        session.writing--;
        throw error;
      },
    );
    this.writes.add(done);
    const forget = () => void this.writes.delete(done);
    done.then(forget, forget);
    return done;
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
    return endConnections ? Promise.resolve(done).then(() => this.connections.end(def.name, id)) : Promise.resolve(done);
  }

  /**
   * Throws `SessionTooLargeError` when a cookie-stored session no longer fits in its cookie. With
   * `growth` (an upper bound of what a change added to the sealed text), the exact, costly check
   * runs only when the change could reach the limit.
   */
  checkSize(session: SessionState, growth?: number): void {
    if (growth !== undefined && session.sizeHeadroom !== undefined) {
      const encoded = Math.ceil((growth * 4) / 3) + 4;
      if (encoded < session.sizeHeadroom) {
        session.sizeHeadroom -= encoded;
        return;
      }
    }
    const def = session.definition;
    const store = def.store as ClientSessionStore;
    const size = def.cookieName.length + 1 + store.sealedLength(session.id, session.record(session.nextExpiry(Date.now())));
    this.checkCookieSize(session, size);
  }

  private checkCookieSize(session: SessionState, size: number): void {
    const def = session.definition;
    const limit = def.cookieLimit;
    session.sizeHeadroom = limit - size;
    if (size > limit) {
      const error = new SessionTooLargeError(
        `Session '${def.name}' would need a ${size}-byte cookie, over the ${limit}-byte limit browsers keep; store less in it, or use a server-side store`,
        size,
        limit,
      );
      this.logger.error(error.message);
      throw error;
    }
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

  private signedValue(session: SessionState): string {
    return (session.cookieValue ??= session.definition.signer.sign(session.id));
  }

  private cookie(session: SessionState, request: CookieTarget, value: string, expiresAt: number, now: number): string {
    const def = session.definition;
    const attributes = def.secureAuto && !request.isSecure() ? def.attributesInsecure : def.attributes;
    const maxAge = session.meta.maxAge ?? def.cookieMaxAge;
    if (maxAge === undefined) return `${def.cookieName}=${value}${attributes}`;
    const seconds = Math.max(0, Math.ceil(Math.min(maxAge, expiresAt - now) / 1000));
    return `${def.cookieName}=${value}; Max-Age=${seconds}${attributes}`;
  }

  /**
   * Calls the store (or, naming it in `whose`, another back-end the session depends on); a failure
   * or a timeout becomes a logged `SessionStoreError`.
   */
  call<T>(def: SessionDefinition, what: string, operation: (store: SessionStore) => MaybePromise<T> | PromiseLike<T>, whose?: string): MaybePromise<T> {
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
      const timer = setTimeout(() => reject(this.storeError(def, what, new Error(`no answer within ${def.storeTimeout} ms`), whose)), def.storeTimeout);
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

/** A reader whose response can carry a new cookie: an HTTP request's sessions. */
function canMigrate(reader: SessionReader): reader is RequestSessions {
  return typeof (reader as Partial<RequestSessions>).cookie === 'function';
}

/** Any thenable counts as pending: stores may answer with another promise library's promise. */
export function isThenable<T>(value: MaybePromise<T>): value is PromiseLike<T> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<T>).then === 'function';
}

function cookieOnly(session: SessionState, cookie: string): SavePlan {
  return { session, kind: undefined, id: '', write: undefined, record: undefined, patch: undefined, cookie };
}

/** A read-only request extends the expiry only once a fraction of the lifetime has passed since the last write. */
function touchDue(session: SessionState, now: number): boolean {
  if (session.touchRequested) return true;
  if (session.storedThisRequest) return false;
  const ttl = session.meta.maxAge ?? session.definition.idleTimeout;
  return now >= session.storedExpiresAt - ttl + ttl * TOUCH_FRACTION;
}

/** Longest `User-Agent` kept for a tied session, in characters. */
const MAX_USER_AGENT = 512;

/**
 * The tie of `tie`'s user with what this request shows of the device (only what `device` asks for);
 * where the device is not known (a socket's message), what was recorded before stays.
 */
function seen(def: SessionDefinition, tie: SessionUser, target: CookieTarget, now: number): SessionUser {
  const user: SessionUser = { id: tie.id, lastSeenAt: now };
  if (def.recordUserAgent) {
    const agent = target.userAgent === undefined ? tie.userAgent : target.userAgent();
    if (agent !== undefined) user.userAgent = agent.slice(0, MAX_USER_AGENT).toWellFormed();
  }
  if (def.recordIp) {
    const ip = target.clientIp === undefined ? tie.ip : target.clientIp();
    if (ip !== undefined) user.ip = ip;
  }
  if (tie.version !== undefined) user.version = tie.version;
  return user;
}

/**
 * The session for a stored record, or a fresh one when the record is missing, expired or not one of
 * this session kind. `currentKey` false: the client is sent a new cookie on the next save.
 */
export function adopt(
  def: SessionDefinition,
  request: SessionHost,
  id: string,
  currentKey: boolean,
  cookieValue: string,
  found: SessionRecord | undefined,
): SessionState | Promise<SessionState> {
  const record = checked(found, def);
  if (record === undefined) return new SessionState(def, request);
  const open = (): SessionState => {
    const session = new SessionState(def, request, id, record);
    if (currentKey) session.cookieValue = cookieValue;
    else session.signedWithOldKey = true;
    return session;
  };
  return matching(def, request, record, open);
}

/** The session `open` makes when the record's data matches the schema (if any), else a fresh one (as for a bad cookie). */
export function matching(def: SessionDefinition, request: SessionHost, record: SessionRecord, open: () => SessionState): SessionState | Promise<SessionState> {
  const schema = def.schema;
  if (schema === undefined) return open();
  const made = (verdict: IssueSet | false | undefined): SessionState => {
    if (verdict === false) return new SessionState(def, request);
    const session = open();
    session.schemaIssues = verdict;
    return session;
  };
  const verdict = schema.acceptStored(record.data);
  return verdict instanceof Promise ? verdict.then(made) : made(verdict);
}

/** The patch changes the user's data, not only the library's own keys, flash messages or the max age. */
function changesData(changes: SessionPatch): boolean {
  for (const key in changes.set) if (!isInternalKey(key)) return true;
  for (const key of changes.unset) if (!isInternalKey(key)) return true;
  return false;
}

/**
 * A stored record of this session kind in the expected shape and not expired, else undefined:
 * garbage, and a record of another named session, read as no session.
 */
export function checked(record: unknown, def: SessionDefinition): SessionRecord | undefined {
  if (record === null || typeof record !== 'object') return undefined;
  const { data, meta, expiresAt } = record as Partial<SessionRecord>;
  if (typeof expiresAt !== 'number' || !(expiresAt > Date.now())) return undefined;
  if (data === null || typeof data !== 'object' || meta === null || typeof meta !== 'object') return undefined;
  if (typeof meta.createdAt !== 'number') return undefined;
  if ((meta.session ?? DEFAULT_SESSION) !== def.name) return undefined;
  if (meta.maxAge !== undefined && !(typeof meta.maxAge === 'number' && meta.maxAge > 0)) return undefined;
  if (meta.flash !== undefined) {
    if (meta.flash === null || typeof meta.flash !== 'object') return undefined;
    for (const key of Object.keys(meta.flash)) if (!Array.isArray(meta.flash[key])) return undefined;
  }
  if (meta.user !== undefined && !isUserTie(meta.user)) return undefined;
  return record as SessionRecord;
}

