import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { serialize } from 'cookie';

const PREFIX = 's:';
/** base64 of an HMAC-SHA256 without its `=` padding, as cookie-signature writes it. */
const SIGNATURE_LENGTH = 43;

/**
 * express-session's cookie: `s:<id>.<base64 HMAC-SHA256 of the id, padding removed>` (the
 * `cookie-signature` format), URL-encoded in the header (the request's cookie parser decodes it).
 * Any of the secrets may have signed it.
 */
export class ExpressSessionCookie {
  private readonly keys: KeyObject[];
  /** A whole `Set-Cookie` value that deletes the cookie. */
  readonly clearCookie: string;

  constructor(
    readonly name: string,
    secrets: readonly string[],
    path: string,
    domain: string | undefined,
  ) {
    this.keys = secrets.map((secret) => createSecretKey(Buffer.from(secret, 'utf8')));
    // Browsers keep a __Secure- or __Host- cookie only from a Set-Cookie with Secure, deletions included.
    const secure = name.startsWith('__Secure-') || name.startsWith('__Host-');
    this.clearCookie = serialize(name, '', { path, domain, httpOnly: true, secure, maxAge: 0, expires: new Date(0) });
  }

  /** The session id in a cookie value whose signature verifies, compared in constant time; else undefined. */
  verify(value: string): string | undefined {
    if (!value.startsWith(PREFIX)) return undefined;
    const dot = value.lastIndexOf('.');
    if (dot <= PREFIX.length) return undefined;
    // Compared as text, as express-session does: any other spelling of the same bytes is refused.
    const given = Buffer.from(value.slice(dot + 1), 'utf8');
    if (given.length !== SIGNATURE_LENGTH) return undefined;
    const id = value.slice(PREFIX.length, dot);
    for (const key of this.keys) {
      const expected = Buffer.from(createHmac('sha256', key).update(id).digest('base64').slice(0, SIGNATURE_LENGTH), 'utf8');
      if (timingSafeEqual(given, expected)) return id;
    }
    return undefined;
  }
}
