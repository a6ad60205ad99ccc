import type { MaybePromise } from '../stores/session-store.interface.js';

/** A session of the library an app moves from, as its store holds it. */
export interface FoundSession {
  /** The user's data, the old library's own bookkeeping removed. */
  readonly data: Readonly<Record<string, unknown>>;
  /** When the old session ends (epoch ms); undefined when it had no end of its own (a browser-session cookie). */
  readonly expiresAt: number | undefined;
  /** The old cookie outlived the browser (it had an expiry of its own). */
  readonly persistent: boolean;
  /** The stored text as it was read: `claim` replaces the session only if it is still this. */
  readonly version: string;
}

/** What a store of the old library holds under an id: a session, or a marker left by a migration. */
export type FoundRecord =
  | FoundSession
  | {
      /** The id of the session this one was moved into: a concurrent request of the same cookie finds it there. */
      readonly migratedTo: string;
    };

/**
 * Where `SessionModule.forRoot({ migrateFrom })` reads sessions of the library an app moves from
 * (`expressSessionReader()` from `nest-sessions/express-session` is one): its cookie and its store.
 */
export interface SessionMigrationSource {
  /** The old library's cookie name. */
  readonly cookieName: string;
  /** A whole `Set-Cookie` value that deletes the old cookie. */
  readonly clearCookie: string;
  /** A short name for logs, e.g. `'express-session (connect-redis)'`. */
  readonly description: string;
  /** The session id in an old cookie's value when its signature verifies (in constant time), else undefined. */
  verify(cookieValue: string): string | undefined;
  /** What the old store holds under `id` and has not expired, or undefined. */
  find(id: string): MaybePromise<FoundRecord | undefined>;
  /**
   * Atomically replaces `found`, if the store still holds it unchanged under `id`, with a marker
   * naming `newId` that lives `markerLifetime` ms: true when it did; otherwise what the store holds
   * under `id` now (another request's marker, a session the old app changed meanwhile, or nothing).
   */
  claim(id: string, found: FoundSession, newId: string, markerLifetime: number): MaybePromise<true | FoundRecord | undefined>;
}
