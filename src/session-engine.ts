import { AsyncLocalStorage } from 'node:async_hooks';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { SESSION_MODULE_OPTIONS, TOUCH_FRACTION } from './session.constants.js';
import { SessionError, SessionStoreError, SessionTooLargeError } from './session.errors.js';
import type { SessionModuleOptions } from './session.options.js';
import { resolveSessions, type SessionDefinition } from './session-definition.js';
import type { ClientSessionStore, MaybePromise, SessionMeta, SessionPatch, SessionRecord, SessionStore } from './session-store.interface.js';
import { SessionState, type SessionDiff } from './session.js';
import type { RequestSessions } from './request-sessions.js';
import { routeInfoOf, type RouteInfo } from './route-info.js';

/**
 * Loads and saves sessions. Every way a session is reached (the interceptor, a guard's
 * `SessionService.load()`, a response that saves itself) calls these same functions.
 */
@Injectable()
export class SessionEngine implements OnApplicationShutdown {
  /** The request being served, for `SessionService.current()`. */
  readonly context = new AsyncLocalStorage<RequestSessions>();
  readonly definitions: ReadonlyMap<string, SessionDefinition>;
  private readonly logger = new Logger('SessionModule');
  private readonly routes = new WeakMap<object, RouteInfo>();
  private readonly writes = new Set<Promise<unknown>>();
  /** `interceptor: 'global'`: every route runs in the context `current()` reads. */
  private readonly globalContext: boolean;

  constructor(@Inject(SESSION_MODULE_OPTIONS) options: SessionModuleOptions | undefined) {
    const resolved = resolveSessions(options ?? {});
    this.definitions = resolved.definitions;
    this.globalContext = options?.interceptor === 'global';
    if (resolved.ephemeralSecret) {
      this.logger.warn(
        'No secret set: session cookies are signed with a random secret for this process only, so sessions end at every restart and cannot be shared between instances. Set secret (32+ characters) in SessionModule.forRoot().',
      );
    }
  }

  definition(name: string): SessionDefinition {
    const def = this.definitions.get(name);
    if (def === undefined) {
      throw new SessionError(
        `No session named '${name}' is configured; add sessions: { ${name}: { ... } } to SessionModule.forRoot()`,
      );
    }
    return def;
  }

  /** What a route asks for, read from its metadata once. */
  route(handler: object, controller: object): RouteInfo {
    let info = this.routes.get(handler);
    if (info === undefined) {
      info = routeInfoOf(handler, controller, this.globalContext);
      for (const name of info.names) this.definition(name);
      this.routes.set(handler, info);
    }
    return info;
  }

  /** The session a request's cookie points to, or a fresh one; never adopts an id the store does not know. */
  read(def: SessionDefinition, request: RequestSessions): SessionState | Promise<SessionState> {
    const value = request.incomingCookie(def);
    if (value === undefined) return new SessionState(def, request);
    if (def.clientSide) {
      const opened = (def.store as ClientSessionStore).open(value);
      const record = opened === undefined ? undefined : checked(opened.record);
      if (record === undefined) return new SessionState(def, request);
      const session = new SessionState(def, request, opened!.id, record);
      // The cookie it came in tells its size: a few bytes of margin for a longer expiry.
      session.sizeHeadroom = def.cookieLimit - (def.cookieName.length + 1 + value.length) - 16;
      return session;
    }
    const signed = def.signer.unsign(value);
    if (signed === undefined) return new SessionState(def, request);
    const [id, currentKey] = signed;
    const found = this.call(def, 'read a session', (store) => store.get(id));
    if (found instanceof Promise) return found.then((record) => adopt(def, request, id, currentKey, value, record));
    return adopt(def, request, id, currentKey, value, found);
  }

  /**
   * Saves what changed in a session and sends its cookie (to `target` when the response is
   * already on its way out). Returns a promise only when there is a store write to wait for.
   */
  commit(session: SessionState, request: RequestSessions, target: string[] | undefined, headersSent: boolean): Promise<void> | undefined {
    const def = session.definition;
    if (!session.stored && !session.hasContent()) {
      // Nothing to store; a destroyed session still owes the client a cleared cookie.
      if (session.destroyed) {
        session.destroyed = false;
        if (!headersSent) request.sendCookie(def.secureAuto && !request.isSecure() ? def.clearCookieInsecure : def.clearCookie, target);
      }
      return undefined;
    }
    const now = Date.now();
    const diff = session.diff();
    const kind: WriteKind | undefined = !session.stored
      ? 'create'
      : diff !== undefined || session.metaChanged
        ? 'update'
        : touchDue(session, now)
          ? 'touch'
          : undefined;
    const expiresAt = kind === undefined ? session.storedExpiresAt : session.nextExpiry(now);
    if (kind === undefined || (kind === 'touch' && expiresAt <= session.storedExpiresAt)) {
      session.touchRequested = false;
      // Nothing to write, but a cookie signed with an old key is replaced.
      if (session.resign && !headersSent) request.sendCookie(this.cookie(def, request, this.signedValue(session), session.meta, expiresAt, now), target);
      session.resign = false;
      return undefined;
    }
    if (def.clientSide) {
      const record = session.record(expiresAt, diff);
      session.committed(expiresAt, diff, record.data);
      return this.sendSealed(session, request, record, now, target, headersSent);
    }
    const resend = kind === 'create' || this.mustResend(session, def);
    const write = this.write(kind, session, diff, expiresAt);
    const cookie = resend && !headersSent ? this.cookie(def, request, this.signedValue(session), session.meta, expiresAt, now) : undefined;
    return this.written(write, request, cookie, target);
  }

  /** The store write for a server-side session; marks the session committed as it starts. */
  private write(kind: WriteKind, session: SessionState, diff: SessionDiff | undefined, expiresAt: number): MaybePromise<void> {
    const def = session.definition;
    const id = session.id;
    if (kind === 'touch') {
      session.committed(expiresAt, undefined);
      return this.call(def, 'touch a session', (store) => store.touch(id, expiresAt));
    }
    if (kind === 'update' && (def.store as SessionStore).patch !== undefined) {
      const patch: SessionPatch = { set: diff?.set ?? {}, unset: diff?.unset ?? [], meta: session.meta, expiresAt };
      session.committed(expiresAt, diff);
      return this.call(def, 'save a session', (store) => store.patch!(id, patch));
    }
    const record = session.record(expiresAt, diff);
    session.committed(expiresAt, diff, record.data);
    return this.call(def, 'save a session', (store) => store.set(id, record));
  }

  /** Removes a stored session at once (regenerate, destroy). */
  destroy(session: SessionState): MaybePromise<void> {
    const def = session.definition;
    if (def.clientSide) return undefined;
    const id = session.id;
    return this.call(def, 'destroy a session', (store) => store.destroy(id));
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

  private sendSealed(
    session: SessionState,
    request: RequestSessions,
    record: SessionRecord,
    now: number,
    target: string[] | undefined,
    headersSent: boolean,
  ): undefined {
    const def = session.definition;
    if (headersSent) return undefined;
    const value = (def.store as ClientSessionStore).seal(session.id, record);
    this.checkCookieSize(session, def.cookieName.length + 1 + value.length);
    request.sendCookie(this.cookie(def, request, value, record.meta, record.expiresAt, now), target);
    return undefined;
  }

  /** Waits for a store write (if any), then sends the cookie; on the response path the cookie goes at once. */
  private written(write: MaybePromise<void>, request: RequestSessions, cookie: string | undefined, target: string[] | undefined): Promise<void> | undefined {
    if (!(write instanceof Promise)) {
      if (cookie !== undefined) request.sendCookie(cookie, target);
      return undefined;
    }
    if (cookie !== undefined && target !== undefined) request.sendCookie(cookie, target);
    const done = write.then(() => {
      if (cookie !== undefined && target === undefined) request.sendCookie(cookie, undefined);
    });
    this.writes.add(done);
    const forget = () => void this.writes.delete(done);
    done.then(forget, forget);
    return done;
  }

  private mustResend(session: SessionState, def: SessionDefinition): boolean {
    return session.resign || session.meta.maxAge !== undefined || def.cookieMaxAge !== undefined;
  }

  private signedValue(session: SessionState): string {
    return (session.cookieValue ??= session.definition.signer.sign(session.id));
  }

  private cookie(def: SessionDefinition, request: RequestSessions, value: string, meta: SessionMeta, expiresAt: number, now: number): string {
    const attributes = def.secureAuto && !request.isSecure() ? def.attributesInsecure : def.attributes;
    const maxAge = meta.maxAge ?? def.cookieMaxAge;
    if (maxAge === undefined) return `${def.cookieName}=${value}${attributes}`;
    const seconds = Math.max(0, Math.ceil(Math.min(maxAge, expiresAt - now) / 1000));
    return `${def.cookieName}=${value}; Max-Age=${seconds}${attributes}`;
  }

  /** Calls the store; a failure or a timeout becomes a logged `SessionStoreError`. */
  private call<T>(def: SessionDefinition, what: string, operation: (store: SessionStore) => MaybePromise<T>): MaybePromise<T> {
    let result: MaybePromise<T>;
    try {
      // Outside the request's context: what a store creates lazily (a connection, a cached promise)
      // must not keep the first request that happened to trigger it alive.
      result = this.context.exit(operation, def.store as SessionStore);
    } catch (error) {
      return Promise.reject(this.storeError(def, what, error));
    }
    if (!(result instanceof Promise)) return result;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(this.storeError(def, what, new Error(`no answer within ${def.storeTimeout} ms`))), def.storeTimeout);
      result.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(this.storeError(def, what, error));
        },
      );
    });
  }

  private storeError(def: SessionDefinition, what: string, cause: unknown): SessionStoreError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const message = `The store of session '${def.name}' failed to ${what}: ${reason}`;
    this.logger.error(message);
    return new SessionStoreError(message, { cause });
  }
}

type WriteKind = 'create' | 'update' | 'touch';

/** A read-only request extends the expiry only once a fraction of the lifetime has passed since the last write. */
function touchDue(session: SessionState, now: number): boolean {
  if (session.touchRequested) return true;
  const ttl = session.meta.maxAge ?? session.definition.idleTimeout;
  return now >= session.storedExpiresAt - ttl + ttl * TOUCH_FRACTION;
}

function adopt(
  def: SessionDefinition,
  request: RequestSessions,
  id: string,
  currentKey: boolean,
  cookieValue: string,
  found: SessionRecord | undefined,
): SessionState {
  const record = checked(found);
  if (record === undefined) return new SessionState(def, request);
  const session = new SessionState(def, request, id, record);
  if (currentKey) session.cookieValue = cookieValue;
  else session.resign = true;
  return session;
}

/** A stored record in the expected shape and not expired, else undefined: garbage reads as no session. */
function checked(record: unknown): SessionRecord | undefined {
  if (record === null || typeof record !== 'object') return undefined;
  const { data, meta, expiresAt } = record as Partial<SessionRecord>;
  if (typeof expiresAt !== 'number' || !(expiresAt > Date.now())) return undefined;
  if (data === null || typeof data !== 'object' || meta === null || typeof meta !== 'object') return undefined;
  if (typeof meta.createdAt !== 'number') return undefined;
  if (meta.maxAge !== undefined && !(typeof meta.maxAge === 'number' && meta.maxAge > 0)) return undefined;
  if (meta.flash !== undefined) {
    if (meta.flash === null || typeof meta.flash !== 'object') return undefined;
    for (const key of Object.keys(meta.flash)) if (!Array.isArray(meta.flash[key])) return undefined;
  }
  return record as SessionRecord;
}

