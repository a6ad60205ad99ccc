import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { randomSlice } from '../random-pool.js';
import type { ClientSessionStore, SessionMeta, SessionRecord } from '../session-store.interface.js';
import { SessionConfigError } from '../session.errors.js';

/** Opened cookie values kept, at most (values are at most a few kilobytes each). */
const OPENED_CACHE_SIZE = 1000;

export interface CookieStoreOptions {
  /** One secret, or a list: the first encrypts, all decrypt. Each at least 32 characters. */
  secret: string | string[];
  /** The browser's limit for one cookie (name, `=` and value), in bytes. Default 4096. */
  maxCookieSize?: number;
}

/*
 * Sealed value: base64url (no padding) of
 *   version (1 byte) | key hint (4 bytes) | IV (12 bytes) | ciphertext | GCM tag (16 bytes)
 * with version and hint authenticated as AAD. The plaintext is the UTF-8 JSON of
 *   [id, expiresAt, createdAt, data, maxAge?, flash?, session?]
 * trailing absent fields left out, and null standing for an absent field before a present one (a
 * value sealed before session names existed simply ends earlier).
 */
const VERSION = 1;
const HINT_END = 5;
const IV_END = 17;
const TAG_BYTES = 16;
const OVERHEAD = IV_END + TAG_BYTES;
const ALGORITHM = 'aes-256-gcm';
const CIPHER_OPTIONS = { authTagLength: TAG_BYTES } as const;
// Purpose-bound derivation: the same secret used to sign ids elsewhere yields an unrelated key.
const HKDF_SALT = 'nest-sessions/cookie-store/salt/v1';
const HKDF_INFO = 'nest-sessions/cookie-store/aes-256-gcm-key+hint/v1';
const MIN_SECRET_LENGTH = 32;
const SECRET_ADVICE = 'use 32+ random characters, e.g. from `openssl rand -base64 48`';

/** Base64url length without padding of `bytes` bytes. */
function base64urlLength(bytes: number): number {
  return Math.floor((bytes * 4 + 2) / 3);
}

function isRecordObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** A session kept in the client's cookie, encrypted and authenticated with AES-256-GCM. */
export class CookieStore implements ClientSessionStore {
  readonly clientSide = true as const;
  readonly maxCookieSize: number;
  private readonly keys: KeyObject[] = [];
  private readonly hints: number[] = [];
  private readonly sealHeader = Buffer.alloc(HINT_END);

  constructor(options: CookieStoreOptions) {
    const secrets: unknown = options?.secret;
    const list: unknown[] = Array.isArray(secrets) ? secrets : [secrets];
    if (list.length === 0) {
      throw new SessionConfigError(`CookieStore secret is an empty list: give at least one secret (${SECRET_ADVICE}).`);
    }
    for (let i = 0; i < list.length; i++) {
      const secret = list[i];
      const name = Array.isArray(secrets) ? `CookieStore secret[${i}]` : 'CookieStore secret';
      if (typeof secret !== 'string') {
        throw new SessionConfigError(`${name} is missing or not a string: ${SECRET_ADVICE}.`);
      }
      if (secret.length < MIN_SECRET_LENGTH) {
        throw new SessionConfigError(`${name} is ${secret.length} characters, fewer than ${MIN_SECRET_LENGTH}: ${SECRET_ADVICE}.`);
      }
      // One HKDF output split in two: 32 bytes of key, 4 bytes of hint that reveal nothing about the key.
      const okm = Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, HKDF_INFO, 36));
      this.keys.push(createSecretKey(okm.subarray(0, 32)));
      this.hints.push(okm.readUInt32BE(32));
    }
    const max = options.maxCookieSize ?? 4096;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new SessionConfigError(`CookieStore maxCookieSize must be a positive integer (bytes), got ${String(max)}.`);
    }
    this.maxCookieSize = max;
    this.sealHeader[0] = VERSION;
    this.sealHeader.writeUInt32BE(this.hints[0], 1);
  }

  /** Cookie values opened recently: value → what it holds. */
  private readonly opened = new Map<string, { id: string; record: SessionRecord }>();

  seal(id: string, record: SessionRecord): string {
    const plaintext = this.plaintext(id, record);
    const header = Buffer.allocUnsafe(IV_END);
    this.sealHeader.copy(header, 0);
    randomSlice(IV_END - HINT_END).copy(header, HINT_END);
    const cipher = createCipheriv(ALGORITHM, this.keys[0], header.subarray(HINT_END, IV_END), CIPHER_OPTIONS);
    cipher.setAAD(this.sealHeader);
    const ciphertext = cipher.update(plaintext, 'utf8');
    cipher.final(); // GCM is a stream mode: final() yields no bytes
    const tag = cipher.getAuthTag();
    return Buffer.concat([header, ciphertext, tag], IV_END + ciphertext.length + TAG_BYTES).toString('base64url');
  }

  sealedLength(id: string, record: SessionRecord): number {
    // GCM ciphertext is exactly as long as the plaintext.
    return base64urlLength(OVERHEAD + Buffer.byteLength(this.plaintext(id, record), 'utf8'));
  }

  open(value: string): { id: string; record: SessionRecord } | undefined {
    const known = this.opened.get(value);
    if (known !== undefined) return known.record.expiresAt > Date.now() ? known : undefined;
    let result: { id: string; record: SessionRecord } | undefined;
    try {
      result = this.unseal(value);
    } catch {
      return undefined; // fail closed: nothing from the client may turn into an exception
    }
    if (result !== undefined) {
      // Only authentic values are remembered, so forged cookies cannot fill the cache; a returning
      // client costs no decryption. The engine never changes what it is given.
      if (this.opened.size >= OPENED_CACHE_SIZE) this.opened.clear();
      this.opened.set(value, result);
    }
    return result;
  }

  close(): void {
    // Nothing to release.
  }

  private plaintext(id: string, record: SessionRecord): string {
    const { meta } = record;
    if (meta.session !== undefined) {
      return JSON.stringify([id, record.expiresAt, meta.createdAt, record.data, meta.maxAge ?? null, meta.flash ?? null, meta.session]);
    }
    if (meta.flash !== undefined) {
      return JSON.stringify([id, record.expiresAt, meta.createdAt, record.data, meta.maxAge ?? null, meta.flash]);
    }
    if (typeof meta.maxAge === 'number') {
      return JSON.stringify([id, record.expiresAt, meta.createdAt, record.data, meta.maxAge]);
    }
    return JSON.stringify([id, record.expiresAt, meta.createdAt, record.data]);
  }

  private unseal(value: string): { id: string; record: SessionRecord } | undefined {
    if (typeof value !== 'string') return undefined;
    const raw = Buffer.from(value, 'base64url');
    // The decoder skips bad characters and ignores stray bits: accept only the canonical encoding.
    if (raw.length <= OVERHEAD || raw[0] !== VERSION || raw.toString('base64url') !== value) return undefined;
    const hint = raw.readUInt32BE(1);
    for (let i = 0; i < this.keys.length; i++) {
      if (this.hints[i] !== hint) continue;
      const plaintext = decrypt(this.keys[i], raw);
      if (plaintext !== undefined) return parse(plaintext);
    }
    return undefined;
  }
}

function decrypt(key: KeyObject, raw: Buffer): string | undefined {
  const tagStart = raw.length - TAG_BYTES;
  const decipher = createDecipheriv(ALGORITHM, key, raw.subarray(HINT_END, IV_END), CIPHER_OPTIONS);
  decipher.setAAD(raw.subarray(0, HINT_END));
  decipher.setAuthTag(raw.subarray(tagStart));
  const plaintext = decipher.update(raw.subarray(IV_END, tagStart));
  try {
    decipher.final(); // throws when the tag does not match
  } catch {
    return undefined; // another key with the same hint may still match
  }
  return plaintext.toString('utf8');
}

/** Validates every field of a decrypted plaintext; result objects have no prototype. */
function parse(text: string): { id: string; record: SessionRecord } | undefined {
  const p: unknown = JSON.parse(text);
  if (!Array.isArray(p) || p.length < 4 || p.length > 7) return undefined;
  const [id, expiresAt, createdAt, rawData, maxAge, rawFlash, session] = p as unknown[];
  if (typeof id !== 'string' || !isFiniteNumber(expiresAt) || !isFiniteNumber(createdAt)) return undefined;
  if (expiresAt <= Date.now() || !isRecordObject(rawData)) return undefined;

  const data: Record<string, string> = Object.create(null);
  for (const key of Object.keys(rawData)) {
    const v = rawData[key];
    if (typeof v !== 'string') return undefined;
    data[key] = v;
  }

  const meta: SessionMeta = { createdAt };
  if (p.length >= 5) {
    if (isFiniteNumber(maxAge)) meta.maxAge = maxAge;
    else if (maxAge !== null || p.length === 5) return undefined;
  }
  if (p.length >= 6 && !(p.length === 7 && rawFlash === null)) {
    if (!isRecordObject(rawFlash)) return undefined;
    const flash: Record<string, unknown[]> = Object.create(null);
    for (const key of Object.keys(rawFlash)) {
      const list = rawFlash[key];
      if (!Array.isArray(list)) return undefined;
      flash[key] = list;
    }
    meta.flash = flash;
  }
  if (p.length === 7) {
    if (typeof session !== 'string') return undefined;
    meta.session = session;
  }
  return { id, record: { data, meta, expiresAt } };
}
