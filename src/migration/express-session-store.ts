import { SessionConfigError, SessionStoreError } from '../session/session.errors.js';
import { applyPatch } from '../stores/record-patch.js';
import type { SessionPatch, SessionRecord, SessionStore, UserSessionEntry } from '../stores/session-store.interface.js';
import { readStoredSession, storedSession, storeIdOf } from './express-session-store.record.js';
import { KeyedQueue } from '../stores/keyed-queue.js';

/**
 * An express-session store (connect-redis, connect-pg-simple, connect-mongo, memorystore...): the
 * methods express-session itself calls, each with a callback. `touch()` is not used (see `touch`).
 */
export interface ExpressSessionCompatibleStore {
  /** Calls back with the session stored under `sid`, or with none (`null` or `undefined`). */
  get(sid: string, callback: (error: any, session?: any) => void): unknown;
  /** Stores `session` (its `cookie.expires` decides when it ends) under `sid`. */
  set(sid: string, session: any, callback?: (error?: any) => void): unknown;
  /** Removes the session stored under `sid`. */
  destroy(sid: string, callback?: (error?: any) => void): unknown;
  /** Every session: used only with `listByUser: 'scan'`. */
  all?(callback: (error: any, sessions?: any) => void): unknown;
  /** Called by the adapter's `close()` only with `closeStore: true`. */
  close?(...args: any[]): unknown;
}

/** The options of `fromExpressSessionStore(store, options?)`. */
export interface ExpressSessionStoreOptions {
  /**
   * `'scan'`: the adapter gets `listByUser()` (for `SessionService.sessionsOf()`, `endSessionsOf()`
   * and `endSession()`), answered by reading every session in the store through its `all()`: time
   * and memory grow with the number of sessions, so only for small stores. Default: no listing.
   */
  listByUser?: 'scan';
  /** Call the store's own `close()` when the app shuts down (the adapter's `close()`). Default false: the store is yours. */
  closeStore?: boolean;
  /**
   * How long, in ms, the adapter waits for a store's callback before the call fails and the next
   * write of the same session may go ahead. Keep it below the module's `storeTimeout` (default
   * 5000), so that a lost callback fails only the request whose call it was. Default 4000.
   */
  timeout?: number;
}

type Callback = (error?: unknown, value?: unknown) => void;

/** After `destroy()`, how long this process refuses to patch, touch or read that id. */
const TOMBSTONE_MS = 60_000;
/** Most destroyed ids remembered at once; past it, the oldest are forgotten first. */
const MAX_TOMBSTONES = 10_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Below the engine's default `storeTimeout` (5 s): a lost callback fails its own request only. */
const DEFAULT_TIMEOUT = 4_000;

/**
 * Any express-session store as a nest-sessions `SessionStore`. Each session is written as an
 * express-session session whose `cookie.expires` and `cookie.maxAge` end at the record's expiry (the
 * store's TTL follows them) and whose field `nestSessions` holds the record as JSON text.
 *
 * A callback store has no partial write: `patch()` and `touch()` read the session, change it and
 * write it whole. Within this process the writes of one session run one after the other, so none is
 * lost and a destroyed session never comes back; across processes, a write can undo another
 * process's change or logout made between its read and its write.
 *
 * ```ts
 * SessionModule.forRoot({ store: fromExpressSessionStore(new RedisStore({ client })) }) // connect-redis
 * ```
 */
export function fromExpressSessionStore(store: ExpressSessionCompatibleStore, options: ExpressSessionStoreOptions = {}): SessionStore {
  checkStore(store);
  if (options === null || typeof options !== 'object') {
    throw new SessionConfigError('fromExpressSessionStore(store, options): options must be an object such as { listByUser: \'scan\' }, or left out');
  }
  const { listByUser, closeStore = false, timeout = DEFAULT_TIMEOUT } = options;
  if (listByUser !== undefined && listByUser !== 'scan') {
    throw new SessionConfigError(`fromExpressSessionStore: listByUser must be 'scan' (list a user's sessions by reading them all through the store's all()) or left out; got ${JSON.stringify(listByUser) ?? typeof listByUser}`);
  }
  if (listByUser === 'scan' && typeof store.all !== 'function') {
    throw new SessionConfigError(`fromExpressSessionStore: listByUser: 'scan' reads every session through the store's all(), and this store (${nameOf(store)}) has none; leave listByUser out`);
  }
  if (typeof closeStore !== 'boolean') {
    throw new SessionConfigError('fromExpressSessionStore: closeStore must be true (close the store when the app shuts down) or false');
  }
  if (closeStore && typeof store.close !== 'function') {
    throw new SessionConfigError(`fromExpressSessionStore: closeStore: true calls the store's close(), and this store (${nameOf(store)}) has none; leave closeStore out and release what the store holds yourself`);
  }
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMER_MS) {
    throw new SessionConfigError(`fromExpressSessionStore: timeout must be a whole number of ms from 1 to ${MAX_TIMER_MS}; got ${JSON.stringify(timeout) ?? typeof timeout}`);
  }
  return new ExpressSessionStoreAdapter(store, { scan: listByUser === 'scan', closeStore, timeout });
}

class ExpressSessionStoreAdapter implements SessionStore {
  /** Present only with `listByUser: 'scan'`: the engine and the kit look for the method. */
  readonly listByUser?: (userId: string) => Promise<UserSessionEntry[]>;
  private readonly name: string;
  // One chain of writes per id with work pending; the entry is deleted when its chain drains.
  private readonly queues = new KeyedQueue();
  // Ids destroyed by this process, with when to forget them; oldest first (Map order).
  private readonly destroyed = new Map<string, number>();

  constructor(
    private readonly store: ExpressSessionCompatibleStore,
    private readonly options: { scan: boolean; closeStore: boolean; timeout: number },
  ) {
    this.name = nameOf(store);
    if (options.scan) this.listByUser = (userId) => this.scan(userId);
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    // A store whose reads lag behind its writes (replicas) could still show it.
    if (this.isDestroyed(id)) return undefined;
    return this.read(id);
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    this.destroyed.delete(id); // a deliberate write of the whole session
    await this.queues.run(id, () => this.write(id, record));
  }

  /** Read, patch, write whole: nothing for a session that is gone, expired or destroyed by this process. */
  async patch(id: string, patch: SessionPatch): Promise<void> {
    await this.queues.run(id, async () => {
      if (this.isDestroyed(id)) return;
      const current = await this.read(id);
      if (current !== undefined) await this.write(id, applyPatch(current, patch));
    });
  }

  /**
   * Read and write whole with the new expiry. Not the store's own `touch()`: connect-redis and
   * connect-pg-simple move only their TTL, leaving the expiry inside the record behind.
   */
  async touch(id: string, expiresAt: number): Promise<void> {
    await this.queues.run(id, async () => {
      if (this.isDestroyed(id)) return;
      const current = await this.read(id);
      if (current !== undefined) await this.write(id, { ...current, expiresAt });
    });
  }

  async destroy(id: string): Promise<void> {
    this.bury(id);
    try {
      await this.queues.run(id, () => this.remove(id));
    } catch (error) {
      // Not destroyed: the store still holds it, so this process must not read it as gone (a retried
      // logout would answer 200 and end nothing).
      this.destroyed.delete(id);
      throw error;
    }
  }

  /** Waits for the writes already asked for (a logout at shutdown), then closes the store if `closeStore`. */
  async close(): Promise<void> {
    while (this.queues.size > 0) await this.queues.settled();
    if (!this.options.closeStore) return;
    const store = this.store as Required<ExpressSessionCompatibleStore>;
    await this.call('close', (done) => {
      // close(callback), or close() answering with a promise or nothing.
      if (store.close.length > 0) return store.close(done);
      const result = store.close();
      if (!isThenable(result)) return void done();
      Promise.resolve(result).then(
        () => done(),
        (error: unknown) => done(error ?? new Error('close() rejected')),
      );
      return undefined;
    });
  }

  private async read(id: string): Promise<SessionRecord | undefined> {
    const found = readStoredSession(await this.call('get', (done) => this.store.get(storeIdOf(id), done)), Date.now());
    // A record under another id is one a store mixed up: never someone else's session.
    return found?.id === id ? found.record : undefined;
  }

  private async write(id: string, record: SessionRecord): Promise<void> {
    const now = Date.now();
    if (!(record.expiresAt > now)) return this.remove(id);
    await this.call('set', (done) => this.store.set(storeIdOf(id), storedSession(id, record, now), done));
  }

  private async remove(id: string): Promise<void> {
    await this.call('destroy', (done) => this.store.destroy(storeIdOf(id), done));
  }

  /** The live sessions tied to `userId`, found by reading every session (`listByUser: 'scan'`). */
  private async scan(userId: string): Promise<UserSessionEntry[]> {
    const all = await this.call('all', (done) => this.store.all!(done));
    // Stores answer a list (connect-redis) or an object by id (express-session's MemoryStore, memorystore).
    const sessions: unknown[] = Array.isArray(all) ? all : all instanceof Map ? [...all.values()] : all !== null && typeof all === 'object' ? Object.values(all) : [];
    const now = Date.now();
    const found: UserSessionEntry[] = [];
    for (const value of sessions) {
      const session = readStoredSession(value, now);
      if (session === undefined || session.record.meta.user?.id !== userId || this.isDestroyed(session.id)) continue;
      found.push({ id: session.id, meta: session.record.meta, expiresAt: session.record.expiresAt });
    }
    return found;
  }

  private bury(id: string): void {
    const now = Date.now();
    this.destroyed.delete(id);
    this.destroyed.set(id, now + TOMBSTONE_MS);
    for (const [oldest, until] of this.destroyed) {
      if (until > now && this.destroyed.size <= MAX_TOMBSTONES) break;
      this.destroyed.delete(oldest);
    }
  }

  private isDestroyed(id: string): boolean {
    const until = this.destroyed.get(id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.destroyed.delete(id);
    return false;
  }

  /**
   * Calls a store method with a callback, as express-session does; settles on the first answer: the
   * callback, a throw, or a rejection of a promise the method returns (connect-redis also returns
   * one). A promise's value is not an answer: stores give theirs to the callback.
   */
  private call<T = unknown>(operation: string, invoke: (done: Callback) => unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const fail = (error: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const reason = error instanceof Error ? error.message : String(error);
        reject(new SessionStoreError(`fromExpressSessionStore(${this.name}): ${operation} failed: ${reason}`, { cause: error }));
      };
      const timer = setTimeout(() => fail(new Error(`no callback within ${this.options.timeout} ms (option timeout)`)), this.options.timeout);
      timer.unref();
      const done: Callback = (error, value) => {
        if (error) return fail(error); // falsy errors are none, as in express-session
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value as T);
      };
      let returned: unknown;
      try {
        returned = invoke(done);
      } catch (error) {
        return fail(error);
      }
      if (isThenable(returned)) Promise.resolve(returned).then(undefined, (error: unknown) => fail(error ?? new Error(`${operation}() rejected`)));
    });
  }
}

function checkStore(store: unknown): asserts store is ExpressSessionCompatibleStore {
  const usage = 'pass an express-session store instance, such as fromExpressSessionStore(new RedisStore({ client })) with connect-redis';
  if (typeof store === 'function') {
    throw new SessionConfigError(`fromExpressSessionStore(store): got a function; ${usage}: the store made with new, not its class or the factory some packages export (memorystore, connect-pg-simple: new (factory(session))(options))`);
  }
  if (store === null || typeof store !== 'object') {
    throw new SessionConfigError(`fromExpressSessionStore(store): got ${store === null ? 'null' : typeof store}; ${usage}`);
  }
  const s = store as Record<string, unknown>;
  if (typeof s.patch === 'function') {
    throw new SessionConfigError(`fromExpressSessionStore(store): ${nameOf(store)} is already a nest-sessions store (it has patch()); give it to SessionModule.forRoot({ store }) as it is`);
  }
  const missing = ['get', 'set', 'destroy'].filter((method) => typeof s[method] !== 'function');
  if (missing.length > 0) {
    throw new SessionConfigError(`fromExpressSessionStore(store): ${nameOf(store)} has no ${missing.map((m) => `${m}()`).join(', ')}; ${usage} (one with get(sid, callback), set(sid, session, callback) and destroy(sid, callback))`);
  }
}

function nameOf(store: object): string {
  const name = (store as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? name : 'the store';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}
