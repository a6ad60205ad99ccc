import { Logger } from '@nestjs/common';
import { isInternalKey, TOUCH_FRACTION } from '../session/session.constants.js';
import { SessionTooLargeError } from '../session/session.errors.js';
import type { SessionDefinition } from '../session/session-definition.js';
import type { PendingWrite, SessionState } from '../session/session.js';
import type { ClientSessionStore, SessionPatch, SessionRecord, SessionUser } from '../stores/session-store.interface.js';

/**
 * What saving a session takes, decided before any store call: the store call (create, update,
 * touch, or none) and the cookie. Planning changes nothing a failed write would have to undo.
 */

const logger = new Logger('SessionModule');

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

/** Whom a session's cookie would be sent to. */
export interface CookieTarget {
  isSecure(): boolean;
  /** The client's `User-Agent` and address, recorded for a session tied to a user (absent: unknown here). */
  userAgent?(): string | undefined;
  clientIp?(): string | undefined;
}

/**
 * What saving `session` now takes: the store call and the cookie. Changes nothing that a failed
 * write would have to undo; throws `SessionTooLargeError` or `SessionValidationError` when the
 * session cannot be saved. `headersSent`: no cookie can go out any more.
 */
export function planSave(session: SessionState, request: CookieTarget, headersSent: boolean): SavePlan | undefined {
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
    return cookieOnly(session, cookieFor(session, request, signedValue(session), expiresAt, now));
  }
  if (headersSent && (def.clientSide || kind === 'create')) {
    // Its cookie can no longer reach the client: writing would only make an orphan.
    logger.warn(`Session '${def.name}' changed after the response's head was sent; the change is not saved (save before streaming a response)`);
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
    checkCookieSize(session, def.cookieName.length + 1 + value.length);
    return {
      session,
      kind: undefined,
      id,
      write: session.pending(expiresAt, changes, record.data),
      record: undefined,
      patch: undefined,
      cookie: cookieFor(session, request, value, expiresAt, now),
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
    cookie: resend && !headersSent ? cookieFor(session, request, signedValue(session), expiresAt, now) : undefined,
    check,
  };
}


/**
 * Throws `SessionTooLargeError` when a cookie-stored session no longer fits in its cookie. With
 * `growth` (an upper bound of what a change added to the sealed text), the exact, costly check
 * runs only when the change could reach the limit.
 */
export function checkSize(session: SessionState, growth?: number): void {
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
  checkCookieSize(session, size);
}

function checkCookieSize(session: SessionState, size: number): void {
  const def = session.definition;
  const limit = def.cookieLimit;
  session.sizeHeadroom = limit - size;
  if (size > limit) {
    const error = new SessionTooLargeError(
      `Session '${def.name}' would need a ${size}-byte cookie, over the ${limit}-byte limit browsers keep; store less in it, or use a server-side store`,
      size,
      limit,
    );
    logger.error(error.message);
    throw error;
  }
}


function signedValue(session: SessionState): string {
  return (session.cookieValue ??= session.definition.signer.sign(session.id));
}

function cookieFor(session: SessionState, request: CookieTarget, value: string, expiresAt: number, now: number): string {
  const def = session.definition;
  const attributes = def.secureAuto && !request.isSecure() ? def.attributesInsecure : def.attributes;
  const maxAge = session.meta.maxAge ?? def.cookieMaxAge;
  if (maxAge === undefined) return `${def.cookieName}=${value}${attributes}`;
  const seconds = Math.max(0, Math.ceil(Math.min(maxAge, expiresAt - now) / 1000));
  return `${def.cookieName}=${value}; Max-Age=${seconds}${attributes}`;
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

/** The patch changes the user's data, not only the library's own keys, flash messages or the max age. */
function changesData(changes: SessionPatch): boolean {
  for (const key in changes.set) if (!isInternalKey(key)) return true;
  for (const key of changes.unset) if (!isInternalKey(key)) return true;
  return false;
}
