import { createHmac, timingSafeEqual } from 'node:crypto';
import { randomSlice } from '../session/random-pool.js';

/**
 * CSRF tokens: a 32-byte secret kept in the session; a token is an HMAC of it (one for the whole
 * session, or one per form, bound to a method and a path), sent masked with a fresh one-time pad
 * (`pad || pad XOR token`, base64url), so no two responses carry the same bytes (BREACH). Any
 * string is safe to give `matches`: it answers false, never throws.
 */

/** Bytes of the secret and of an unmasked token. */
export const CSRF_SECRET_BYTES = 32;
/** Characters of a masked token: 64 bytes of base64url. */
export const MASKED_TOKEN_LENGTH = 86;
/**
 * Exactly one spelling of 64 bytes: 85 characters, then one whose low four bits are zero (the
 * last character carries two bits), so a token altered in its unused bits is refused too.
 */
const MASKED_TOKEN = /^[A-Za-z0-9_-]{85}[AQgw]$/;
const SECRET_TEXT = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/** A new secret, as it is kept in the session (43 characters of base64url). */
export function newCsrfSecret(): string {
  return Buffer.from(randomSlice(CSRF_SECRET_BYTES)).toString('base64url');
}

/** The secret's bytes, or undefined for anything that is not one (a value a store mangled). */
export function secretBytes(text: unknown): Buffer | undefined {
  return typeof text === 'string' && SECRET_TEXT.test(text) ? Buffer.from(text, 'base64url') : undefined;
}

/** The unmasked token for the whole session. */
export function sessionToken(secret: Buffer): Buffer {
  return createHmac('sha256', secret).update('nest-sessions csrf\u0000session').digest();
}

/** The unmasked token of one form: valid only for a request with this method to this path. */
export function formToken(secret: Buffer, method: string, path: string): Buffer {
  return createHmac('sha256', secret).update(`nest-sessions csrf\u0000form\u0000${method.toUpperCase()}\u0000${normalPath(path)}`).digest();
}

/** A token masked with a fresh one-time pad: a different string every time, each one valid. */
export function maskToken(token: Buffer): string {
  const pad = randomSlice(token.length);
  const masked = Buffer.allocUnsafe(token.length * 2);
  for (let i = 0; i < token.length; i++) {
    masked[i] = pad[i];
    masked[token.length + i] = pad[i] ^ token[i];
  }
  return masked.toString('base64url');
}

/** The token inside a masked one, or undefined for any string that is not a masked token. */
export function unmaskToken(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || value.length !== MASKED_TOKEN_LENGTH || !MASKED_TOKEN.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64url');
  if (bytes.length !== CSRF_SECRET_BYTES * 2) return undefined;
  const token = Buffer.allocUnsafe(CSRF_SECRET_BYTES);
  for (let i = 0; i < CSRF_SECRET_BYTES; i++) token[i] = bytes[i] ^ bytes[CSRF_SECRET_BYTES + i];
  return token;
}

/** Constant-time comparison of two unmasked tokens (always the same length here). */
export function sameToken(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Whether `value` is a masked token valid under `secret`: the session's token, or the token of a
 * form for `method` and `path`. False for anything else, whatever its type or length.
 */
export function tokenMatches(value: unknown, secret: Buffer, method: string, path: string): boolean {
  const token = unmaskToken(value);
  return token !== undefined && unmaskedTokenMatches(token, secret, method, path);
}

/** `tokenMatches` for a token already unmasked. */
export function unmaskedTokenMatches(token: Buffer, secret: Buffer, method: string, path: string): boolean {
  // Each compared in constant time; the form's HMAC only when the session's token did not match
  // (which kind a request carried is no secret: its sender chose it).
  return sameToken(token, sessionToken(secret)) || sameToken(token, formToken(secret, method, path));
}

/** A path as forms are bound to it: no query string, no trailing slash (but `/`). */
export function normalPath(url: string): string {
  const query = url.indexOf('?');
  let path = query === -1 ? url : url.slice(0, query);
  while (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  return path === '' ? '/' : path;
}
