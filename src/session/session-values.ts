import { INTERNAL_KEY_PREFIX, isInternalKey } from './session.constants.js';
import { reported, SessionValidationError } from './session.errors.js';

/** What a session's values, user ids and versions must be, checked as the Session API takes them. */

/**
 * The promise as it is, but one nobody awaits cannot end the process: a failure is logged where it
 * happens (a store error) and the response still saves or answers 503.
 */
export function unhandledIsFine(promise: Promise<void>): Promise<void> {
  promise.catch(() => undefined);
  return promise;
}


/** The library's own keys are not the user's to change. */
export function refuseInternal(key: string, method: string): void {
  if (isInternalKey(key)) {
    throw reported(new SessionValidationError(
      `session.${method}(): keys beginning with a NUL character (${JSON.stringify(INTERNAL_KEY_PREFIX)}) are reserved for the library's own data; choose another key`,
      key,
    ));
  }
}

/** A user's version as recorded: a string, or a finite number as its text. */
export function versionOf(version: unknown): string {
  if (typeof version === 'number' && Number.isFinite(version)) return String(version);
  if (typeof version === 'string') return version;
  throw reported(new SessionValidationError(
    `session.setUser(id, { version }): expected the user's version as userVersion returns it (a string or a finite number); got ${typeof version}`,
    'version',
  ));
}

/** Longest user id accepted, in characters. */
const MAX_USER_ID = 256;

/** A user id as the stores keep it (a finite number as its decimal text), or undefined when `user` is none. */
export function asUserId(user: unknown): string | undefined {
  if (typeof user === 'number' && Number.isFinite(user)) return String(user);
  if (typeof user === 'string' && user.length > 0 && user.length <= MAX_USER_ID) return user;
  return undefined;
}

/** A user id as stored: a non-empty string of at most 256 characters, or a finite number as its text. */
export function userIdOf(user: unknown, where = 'session.setUser()'): string {
  const id = asUserId(user);
  if (id !== undefined) return id;
  throw reported(new SessionValidationError(
    `${where}: expected a user id (a string of 1 to ${MAX_USER_ID} characters or a finite number)${where === 'session.setUser()' ? ', or undefined to untie' : ''}; got ${typeof user === 'string' ? `a string of ${user.length} characters` : typeof user}`,
    'user',
  ));
}

/** The JSON text of a session value; a value JSON cannot represent is refused with a typed error. */
export function jsonOf(value: unknown, where: string, key: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw reported(new SessionValidationError(`${where}: the value cannot be stored as JSON (${(error as Error)?.message ?? String(error)}); session values must be JSON-serialisable`, key, { cause: error }));
  }
  if (typeof text !== 'string') {
    throw reported(new SessionValidationError(`${where}: a ${typeof value} cannot be stored; session values must be JSON-serialisable`, key));
  }
  return text;
}
