import { inspect } from 'node:util';
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { randomSlice } from './random-pool.js';
import { DEFAULT_SESSION } from './session.constants.js';

/** A new session id: 32 bytes from the OS CSPRNG, as 43 characters of base64url. */
export function generateSessionId(): string {
  return randomSlice(32).toString('base64url');
}

const SIGNATURE_LENGTH = 43; // base64url of an HMAC-SHA256
const VERIFIED_CACHE_SIZE = 10_000;

/**
 * Signs ids for the cookie (`<id>.<HMAC-SHA256>`) and verifies them with every key of the ring,
 * in constant time. A cookie value verified once is remembered, so a returning client costs no
 * HMAC on later requests.
 */
export class SessionIdSigner {
  private readonly keys: KeyObject[];
  /** cookie value → [id, signed with the first key] */
  private readonly verified = new Map<string, [string, boolean]>();

  /** Keys and the cookie values it verified stay out of logs. */
  [inspect.custom](): string {
    return 'SessionIdSigner {}';
  }

  /**
   * `sessionName` goes into every key: a value signed for one session (`sid`) is no value at all
   * for another (`prefs`), even with the same secret.
   */
  constructor(secrets: readonly string[], sessionName: string = DEFAULT_SESSION) {
    this.keys = secrets.map((secret) =>
      createSecretKey(createHmac('sha256', Buffer.from(secret, 'utf8')).update(`nest-sessions/session-id/v1/${sessionName}`).digest()),
    );
  }

  sign(id: string): string {
    return `${id}.${this.mac(this.keys[0], id)}`;
  }

  /** The id in a signed cookie value and whether it was signed with the current key, or undefined. */
  unsign(value: string): [id: string, current: boolean] | undefined {
    const known = this.verified.get(value);
    if (known !== undefined) return known;
    const dot = value.length - SIGNATURE_LENGTH - 1;
    if (dot < 1 || value.charCodeAt(dot) !== 46 /* . */) return undefined;
    const id = value.slice(0, dot);
    // Compare the text, not decoded bytes: base64url has several spellings of the same bytes.
    const given = Buffer.from(value.slice(dot + 1), 'utf8');
    if (given.length !== SIGNATURE_LENGTH) return undefined;
    for (let i = 0; i < this.keys.length; i++) {
      if (timingSafeEqual(given, Buffer.from(this.mac(this.keys[i], id), 'utf8'))) {
        const result: [string, boolean] = [id, i === 0];
        this.remember(value, result);
        return result;
      }
    }
    return undefined;
  }

  private mac(key: KeyObject, id: string): string {
    return createHmac('sha256', key).update(id).digest('base64url');
  }

  private remember(value: string, result: [string, boolean]): void {
    // Only authentic values get here, so the cache cannot be filled by forged cookies.
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.clear();
    this.verified.set(value, result);
  }
}
