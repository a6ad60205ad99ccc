/**
 * The shape of session data, empty until an app augments it, in a file that is a module (an
 * `export {}` or an import), or the declaration replaces the package's types:
 *
 * ```ts
 * export {};
 *
 * declare module 'nest-sessions' {
 *   interface SessionData { userId: number; visits: number }
 * }
 * ```
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SessionData {}

/** The flash messages an app sends, by key: `interface FlashMessages { info: string }`. */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface FlashMessages {}

/** Keys of `T`, or any string while `T` has not been augmented. */
export type SessionKey<T> = keyof T extends never ? string : Extract<keyof T, string>;
/** The value type of `K` in `T`, or `unknown` while `T` has not been augmented. */
export type SessionValue<T, K> = keyof T extends never ? any : K extends keyof T ? T[K] : never;

/** The session of one request. Changes are saved as the response leaves, whoever made them. */
export interface Session<T = SessionData> {
  /** The session id (43 characters of base64url). A new session gets one when first read or saved. */
  readonly id: string;
  /** True until the session has been stored: a first visit, or after `destroy()` or `regenerate()`. */
  readonly isNew: boolean;
  /** When the session will expire if nothing else happens. */
  readonly expiresAt: Date;
  /** The user id this session is tied to (`setUser()`), as a string; undefined when none. */
  readonly user: string | undefined;
  /**
   * Ties the session to a user (a string or a number, kept as a string), so that
   * `SessionService.sessionsOf(user)` lists it and `endSessionsOf(user)` can end it; `undefined`
   * unties it. `regenerate()` keeps the tie, `destroy()` removes it. Saved as the response leaves.
   *
   * With `userVersion`, `{ version }` records the user's version the app read when it checked the
   * credentials; without it, the version is read by `userVersion` just before the save (a password
   * change landing in between would then not end this sign-in).
   */
  setUser(user: string | number | undefined, options?: SetUserOptions): void;
  /** The flash messages of this session (the same object `@Flash()` gives). */
  readonly flash: Flash<FlashMessages>;
  /** The value under `key`, or `undefined` when there is none. */
  get<K extends SessionKey<T>>(key: K): SessionValue<T, K> | undefined;
  /** Sets a JSON-serialisable value; `undefined` deletes the key. */
  set<K extends SessionKey<T>>(key: K, value: SessionValue<T, K>): void;
  /** Whether `key` holds a value. */
  has(key: SessionKey<T>): boolean;
  /** Removes `key` and its value. */
  delete(key: SessionKey<T>): void;
  /** Deletes every key (the session itself stays). */
  clear(): void;
  /** Every key and its value. */
  toJSON(): Partial<T>;
  /**
   * The cookie lifetime of this session in ms (remember me), kept with the session for the next
   * requests; `undefined` goes back to the configured default (a browser-session cookie unless
   * `cookie.maxAge` is set). While set, it is also the session's sliding lifetime.
   */
  setMaxAge(ms: number | undefined): void;
  /** Extends the expiry now, as if the session had changed. */
  touch(): void;
  /** A new id for the same data; the old id is destroyed at once (call on login). */
  regenerate(): Promise<void>;
  /** Removes the session from its store and clears the cookie. */
  destroy(): Promise<void>;
  /**
   * Saves now; the cookie still goes with the response's head, and changes made later are saved as
   * the response leaves. A failure rejects (and is logged); not awaiting it is safe.
   */
  save(): Promise<void>;
}

/** Options of `session.setUser()`. */
export interface SetUserOptions {
  /**
   * With `userVersion`: the user's version as the app read it when it checked the credentials (from
   * the same row as the password hash), recorded as it is. Without it, `userVersion` is asked just
   * before the session is saved, so a password change landing between the check and the save would
   * not end this sign-in. A string or a finite number; ignored when `userVersion` is not configured.
   */
  version?: string | number;
}

/** Flash messages: they last until read. */
export interface Flash<T = FlashMessages> {
  /** Adds a message, kept until read (this or a later request). */
  add<K extends SessionKey<T>>(key: K, value: SessionValue<T, K>): void;
  /** The messages under `key`, consumed: they will not be seen again. */
  get<K extends SessionKey<T>>(key: K): SessionValue<T, K>[];
  /** The messages under `key`, left in place. */
  peek<K extends SessionKey<T>>(key: K): SessionValue<T, K>[];
  /** Whether messages wait under `key` (they are not consumed). */
  has(key: SessionKey<T>): boolean;
  /** Every message by key, all consumed. */
  all(): { [K in SessionKey<T>]?: SessionValue<T, K>[] };
  /** A message for this request only: never stored. */
  now<K extends SessionKey<T>>(key: K, value: SessionValue<T, K>): void;
}
