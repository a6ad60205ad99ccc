/**
 * Injection token of the options given to `SessionModule.forRoot()` / `forRootAsync()`: a test
 * replaces them whole with `overrideProvider(SESSION_MODULE_OPTIONS).useValue({ ... })`.
 */
export const SESSION_MODULE_OPTIONS = Symbol('nest-sessions:options');

/** The name of the session that `@Session()` without a name refers to. */
export const DEFAULT_SESSION = 'default';

/** Handler metadata: the session names a route asks for. */
export const SESSION_NAMES_METADATA = 'nest-sessions:names';

/** Handler or controller metadata: run the handler where `SessionService.current()` finds its sessions. */
export const SESSION_CONTEXT_METADATA = 'nest-sessions:context';

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Sliding lifetime of a session when neither `idleTimeout` nor `cookie.maxAge` is set. */
export const DEFAULT_IDLE_TIMEOUT = DAY;

/** A read-only request extends the idle timeout only once this fraction of it has passed. */
export const TOUCH_FRACTION = 0.1;

/** How long a store call may take before the request gets a 503. */
export const DEFAULT_STORE_TIMEOUT = 5 * SECOND;

/** Shortest secret accepted, in characters. */
export const MIN_SECRET_LENGTH = 32;

/** The longest lifetime accepted for a cookie or a session, in ms: browsers cap cookies at 400 days. */
export const MAX_LIFETIME = 400 * DAY;

/**
 * Session data keys that begin with this character are the library's own (the CSRF secret): the
 * Session API never shows them (`get`, `has`, `toJSON`), `clear()` leaves them, `set()` and
 * `delete()` refuse them, and schema validation of the user's data leaves them out. They are stored
 * like any other key (every store round-trips a NUL character in a key).
 */
export const INTERNAL_KEY_PREFIX = '\u0000';

/** Where the session keeps its CSRF secret; `regenerate()` drops it, so a sign-in rotates it. */
export const CSRF_SECRET_KEY = `${INTERNAL_KEY_PREFIX}csrf`;

/** Whether `key` is one of the library's own session keys (see `INTERNAL_KEY_PREFIX`). */
export function isInternalKey(key: unknown): boolean {
  return typeof key === 'string' && key.charCodeAt(0) === 0;
}
