/**
 * The contract between the session engine and a back-end.
 *
 * Values reach a store as JSON text, one string per key: a store keeps them as opaque strings and
 * never parses them, so it cannot be confused by hostile keys or values. Keys (data and flash) are
 * any strings, including ones with NUL characters or lone surrogates: a store whose back-end cannot
 * hold such text as it is encodes it (see `encodeStoreKey`). Every method may answer synchronously
 * or with a promise (any thenable).
 */

/**
 * What the engine keeps beside the user's data. `set` stores it whole; `patch` changes it field by
 * field (each flash key and `maxAge` on their own), so concurrent requests never undo each other.
 */
export interface SessionMeta {
  /** When the session was created (epoch ms); the absolute timeout counts from here. */
  createdAt: number;
  /** A per-session cookie lifetime in ms set by `session.setMaxAge()` (remember me); absent for a browser-session cookie. */
  maxAge?: number;
  /** Flash messages waiting to be read, by key; each key's list is replaced whole. */
  flash?: Record<string, unknown[]>;
  /** The named session this record belongs to (`sessions: { prefs: ... }`); absent for the default session. */
  session?: string;
  /** The user the session is tied to (`session.setUser()`), with what was last seen of its device; absent when none. */
  user?: SessionUser;
}

/**
 * A session's tie to a user. Replaced whole, never changed field by field: a store keeps it as one
 * value and indexes the session under `id` (see `SessionStore.listByUser`).
 */
export interface SessionUser {
  /** The user id, as a string (`setUser(42)` ties to `'42'`); any string, so a store encodes it where its back-end needs (`encodeStoreKey`). */
  id: string;
  /** When a request last wrote the session (epoch ms); server-side stores only. */
  lastSeenAt?: number;
  /** The `User-Agent` of that request, when recorded (`forRoot({ device })`). */
  userAgent?: string;
  /** The client's IP address as the app sees it (its proxy settings apply), when recorded. */
  ip?: string;
  /** The user's version when the session was tied (`forRoot({ userVersion })`). */
  version?: string;
}

/** A session of a user, as `listByUser` returns it: enough to list it, without its data (and `meta.flash` may be left out). */
export interface UserSessionEntry {
  /** The session's id. */
  id: string;
  /** What the engine keeps beside the data; `meta.user` is the tie to the user listed. */
  meta: SessionMeta;
  /** Epoch ms after which the session is gone. */
  expiresAt: number;
}

/** One stored session. */
export interface SessionRecord {
  /** The user's data: key → the JSON text of its value. */
  data: Record<string, string>;
  /** What the engine keeps beside the data: creation time, max age, flash messages, user tie. */
  meta: SessionMeta;
  /** Epoch ms after which the store must never return this session again. */
  expiresAt: number;
}

/**
 * A change to a stored session: only what changed. Everything not named here (other data keys,
 * other flash keys, `maxAge`, `createdAt`, `session`) stays as it is in the store.
 */
export interface SessionPatch {
  /** Data keys to add or replace: key → JSON text. */
  set: Record<string, string>;
  /** Data keys to remove. */
  unset: string[];
  /** Flash keys to replace (key → its whole new list) and flash keys to remove (all their messages were read). */
  flash: {
    /** Flash keys whose list is replaced: key → the whole new list. */
    set: Record<string, unknown[]>;
    /** Flash keys to remove. */
    unset: string[];
  };
  /** Present when the per-session max age changed: the new value, or `null` to remove it. Absent: unchanged. */
  maxAge?: number | null;
  /** Present when the user tie changed or was refreshed: the whole new tie, or `null` to untie. Absent: unchanged. */
  user?: SessionUser | null;
  /** The new expiry (epoch ms). */
  expiresAt: number;
}

/** A value, or a promise (any thenable) of it: what every store method may answer. */
export type MaybePromise<T> = T | PromiseLike<T>;

/**
 * A server-side session store. Ids are opaque strings chosen by the engine (43 characters of
 * base64url for the built-in id generator), but a store must treat any string safely.
 */
export interface SessionStore {
  /** The session stored under `id`, or `undefined` when it is unknown or expired. */
  get(id: string): MaybePromise<SessionRecord | undefined>;
  /** Creates or replaces the whole session. */
  set(id: string, record: SessionRecord): MaybePromise<void>;
  /**
   * Applies a patch to an existing session, leaving every other key as it is, atomically with
   * respect to other patches. A patch on an unknown or expired id does nothing: the session was
   * destroyed (logout, `regenerate()`) or expired meanwhile and must not come back. Required: an
   * update written with `set` would bring a destroyed session back.
   */
  patch(id: string, patch: SessionPatch): MaybePromise<void>;
  /** Moves the expiry of an existing session; nothing for an unknown id. */
  touch(id: string, expiresAt: number): MaybePromise<void>;
  /** Removes the session; nothing for an unknown id. */
  destroy(id: string): MaybePromise<void>;
  /** Deletes expired sessions now (stores also do it on their own schedule). */
  reclaim?(): MaybePromise<void>;
  /**
   * Optional capability: the live sessions tied to the user `userId` (`meta.user.id`), of every
   * session name, in no particular order; `[]` for a user with none. A store that has it keeps an
   * index by user that `set`, `patch` (`user`), `destroy` and expiry keep right: a destroyed,
   * expired or re-tied session is never returned (an index may lag behind as long as what it
   * returns is checked against the sessions). Without it, `SessionService.sessionsOf()`,
   * `endSessionsOf()` and `endSession()` throw `SessionSupportError`.
   */
  listByUser?(userId: string): MaybePromise<UserSessionEntry[]>;
  /**
   * Optional capability: resolves once the back-end has answered a round trip (a Redis `PING`, a
   * `SELECT 1`), rejects when it cannot serve sessions. Reads and changes no session. Health checks
   * call it (`SessionHealthIndicator` in `nest-sessions/health`); a store without it is reported as
   * unchecked, never as down.
   */
  ping?(): MaybePromise<void>;
  /** Stops timers and releases what the store opened itself (not a client it was given). */
  close?(): MaybePromise<void>;
}

/**
 * A client-side store: the whole session travels in the cookie, sealed by the store. The engine
 * asks it to seal a record into a cookie value and to open one; `open` fails closed (undefined for
 * anything it cannot authenticate or that has expired).
 */
export interface ClientSessionStore {
  /** Marks a client-side store: the engine tells the two kinds apart by it. */
  readonly clientSide: true;
  /** The browser's limit for the cookie (name, `=` and value) in bytes; 4096 when absent. */
  readonly maxCookieSize?: number;
  /** Seals the session (its id included) into a cookie value. */
  seal(id: string, record: SessionRecord): string;
  /** The id and session sealed in `value`, or undefined when it is not authentic, malformed or expired. */
  open(value: string):
    | {
        /** The session's id. */
        id: string;
        /** The session. */
        record: SessionRecord;
      }
    | undefined;
  /** How many characters `seal` would produce for this session, computed without encrypting (for the size check at `set`). */
  sealedLength(id: string, record: SessionRecord): number;
  /** Stops timers and releases what the store opened itself. */
  close?(): MaybePromise<void>;
}

/**
 * What `forRoot({ store })` takes: a server-side store (`MemoryStore`, `FileStore`, `RedisStore`,
 * `PostgresStore`, your own `SessionStore`) or a client-side one (`CookieStore`).
 */
export type AnySessionStore = SessionStore | ClientSessionStore;

/**
 * Sets a key of a plain data object as its own property, also for keys such as `__proto__` that a
 * plain assignment would treat as the prototype.
 */
export function putData(data: Record<string, string>, key: string, value: string): void {
  if (key === '__proto__') Object.defineProperty(data, key, { value, enumerable: true, writable: true, configurable: true });
  else data[key] = value;
}

/** A tie in the shape the engine writes (`SessionUser`): stores may use it to check what they read back. */
export function isUserTie(user: unknown): user is SessionUser {
  if (user === null || typeof user !== 'object' || Array.isArray(user)) return false;
  const { id, lastSeenAt, userAgent, ip, version } = user as Partial<SessionUser>;
  return (
    typeof id === 'string' &&
    (lastSeenAt === undefined || (typeof lastSeenAt === 'number' && Number.isFinite(lastSeenAt))) &&
    (userAgent === undefined || typeof userAgent === 'string') &&
    (ip === undefined || typeof ip === 'string') &&
    (version === undefined || typeof version === 'string')
  );
}

export function isClientSideStore(store: AnySessionStore): store is ClientSessionStore {
  return (store as ClientSessionStore).clientSide === true;
}

const ENCODED = '\u0001';

/**
 * A key as text any back-end keeps exactly: UTF-8 and JSON back-ends (Redis field names, PostgreSQL
 * `jsonb`) cannot hold a NUL character or a lone surrogate. Such keys, and keys that start with
 * `\u0001`, become `\u0001` followed by their JSON text (pure ASCII escapes); every other key is
 * returned as it is. `decodeStoreKey` turns it back.
 */
export function encodeStoreKey(key: string): string {
  if (key.charCodeAt(0) !== 1 && key.isWellFormed() && !key.includes('\u0000')) return key;
  return ENCODED + JSON.stringify(key);
}

/** The key that `encodeStoreKey` encoded. */
export function decodeStoreKey(stored: string): string {
  if (stored.charCodeAt(0) !== 1) return stored;
  try {
    const key: unknown = JSON.parse(stored.slice(1));
    return typeof key === 'string' ? key : stored;
  } catch {
    return stored;
  }
}
