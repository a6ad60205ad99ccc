import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { randomSlice } from '../session/random-pool.js';
import { isUserTie, type ClientSessionStore, type SessionMeta, type SessionRecord } from './session-store.interface.js';
import { SessionConfigError } from '../session/session.errors.js';
import { withoutUnsetOlder } from '../session/secret-list.js';
import { XaesKey } from './xaes-256-gcm.js';

/** Opened cookie values kept, at most (values are at most a few kilobytes each). */
const OPENED_CACHE_SIZE = 1000;

/** The options of `new CookieStore({ secret })`. */
export interface CookieStoreOptions {
  /**
   * One secret, or a list: the first encrypts, all decrypt. Each at least 32 characters.
   * `process.env.X` is accepted as it is typed; an unset variable fails at startup, naming it.
   */
  secret: string | readonly (string | undefined)[] | undefined;
  /** The browser's limit for one cookie (name, `=` and value), in bytes. Default 4096. */
  maxCookieSize?: number;
}

/*
 * Sealed value (version 2, the only one written): base64url (no padding) of
 *   version (1 byte) | key hint (4 bytes) | nonce (24 bytes) | ciphertext | GCM tag (16 bytes)
 * sealed with XAES-256-GCM (https://c2sp.org/XAES-256-GCM): AES-256-GCM under a per-message key
 * derived from the secret's key and nonce[0..12], with GCM nonce nonce[12..24]. The 192-bit random
 * nonce lets one key seal 2^80 values before a repeat becomes likely, where plain AES-256-GCM with
 * random 96-bit IVs allows 2^32 (NIST SP 800-38D), which a busy site reaches with one long-lived secret.
 *
 * Version 1 (read only, until the last such cookie has expired): the same with a 12-byte IV and plain
 * AES-256-GCM under the secret's version-1 key.
 *
 * Both: version and hint authenticated as AAD. The plaintext is the UTF-8 JSON of
 *   [id, expiresAt, createdAt, data, maxAge?, flash?, session?, user?]
 * trailing absent fields left out, and null standing for an absent field before a present one (a
 * value sealed before session names existed simply ends earlier).
 */
const VERSION = 2;
const HINT_END = 5;
const NONCE_BYTES = 24;
const NONCE_END = HINT_END + NONCE_BYTES;
/** Where the GCM nonce starts in a version-2 value: the last 12 bytes of the XAES nonce. */
const GCM_NONCE_START = NONCE_END - 12;
const TAG_BYTES = 16;
const OVERHEAD = NONCE_END + TAG_BYTES;
const V1 = 1;
const V1_IV_END = HINT_END + 12;
const V1_OVERHEAD = V1_IV_END + TAG_BYTES;
const ALGORITHM = 'aes-256-gcm';
const CIPHER_OPTIONS = { authTagLength: TAG_BYTES } as const;
// Purpose-bound derivation: the same secret used to sign ids elsewhere yields an unrelated key. Each
// format version has its own key and hint, so no key ever serves two algorithms.
const HKDF_SALT = 'nest-sessions/cookie-store/salt/v1';
const HKDF_INFO = 'nest-sessions/cookie-store/xaes-256-gcm-key+hint/v2';
const HKDF_INFO_V1 = 'nest-sessions/cookie-store/aes-256-gcm-key+hint/v1';
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

/** One HKDF output split in two: 32 bytes of key, 4 bytes of hint that reveal nothing about the key. */
function deriveKey(secret: string, info: string): { key: KeyObject; hint: number } {
  const okm = Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, info, 36));
  return { key: createSecretKey(okm.subarray(0, 32)), hint: okm.readUInt32BE(32) };
}

/** A session kept in the client's cookie, encrypted and authenticated with XAES-256-GCM. */
export class CookieStore implements ClientSessionStore {
  readonly clientSide = true as const;
  readonly maxCookieSize: number;
  /** Per secret, in order: the version-2 (XAES-256-GCM) key and hint. */
  private readonly keys: XaesKey[] = [];
  private readonly hints: number[] = [];
  /** Per secret, in order: the version-1 (AES-256-GCM) key and hint, to open values sealed before version 2. */
  private readonly v1Keys: KeyObject[] = [];
  private readonly v1Hints: number[] = [];
  private readonly sealHeader = Buffer.alloc(HINT_END);

  constructor(options: CookieStoreOptions) {
    const secrets: unknown = options?.secret;
    const list: unknown[] = Array.isArray(secrets) ? withoutUnsetOlder(secrets) : [secrets];
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
      const current = deriveKey(secret, HKDF_INFO);
      this.keys.push(new XaesKey(current.key));
      this.hints.push(current.hint);
      const v1 = deriveKey(secret, HKDF_INFO_V1);
      this.v1Keys.push(v1.key);
      this.v1Hints.push(v1.hint);
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
    const header = Buffer.allocUnsafe(NONCE_END);
    this.sealHeader.copy(header, 0);
    const nonce = header.subarray(HINT_END, NONCE_END);
    randomSlice(NONCE_BYTES).copy(nonce);
    const key = this.keys[0].messageKey(nonce);
    const cipher = createCipheriv(ALGORITHM, key, header.subarray(GCM_NONCE_START, NONCE_END), CIPHER_OPTIONS);
    key.fill(0);
    cipher.setAAD(this.sealHeader);
    const ciphertext = cipher.update(plaintext, 'utf8');
    cipher.final(); // GCM is a stream mode: final() yields no bytes
    const tag = cipher.getAuthTag();
    return Buffer.concat([header, ciphertext, tag], NONCE_END + ciphertext.length + TAG_BYTES).toString('base64url');
  }

  sealedLength(id: string, record: SessionRecord): number {
    // GCM ciphertext is exactly as long as the plaintext.
    return base64urlLength(OVERHEAD + Buffer.byteLength(this.plaintext(id, record), 'utf8'));
  }

  open(value: string):
    | {
        /** The session's id. */
        id: string;
        /** The session. */
        record: SessionRecord;
      }
    | undefined {
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

  /** Nothing to release: the store holds no connection and no timer. */
  close(): void {
    // Nothing to release.
  }

  private plaintext(id: string, record: SessionRecord): string {
    const { meta } = record;
    if (meta.user !== undefined) {
      return JSON.stringify([id, record.expiresAt, meta.createdAt, record.data, meta.maxAge ?? null, meta.flash ?? null, meta.session ?? null, meta.user]);
    }
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
    const version = raw[0];
    if (version === VERSION) {
      // The decoder skips bad characters and ignores stray bits: accept only the canonical encoding.
      if (raw.length <= OVERHEAD || raw.toString('base64url') !== value) return undefined;
      const hint = raw.readUInt32BE(1);
      for (let i = 0; i < this.keys.length; i++) {
        if (this.hints[i] !== hint) continue;
        const key = this.keys[i].messageKey(raw.subarray(HINT_END, NONCE_END));
        const plaintext = decrypt(key, raw, GCM_NONCE_START, NONCE_END);
        key.fill(0);
        if (plaintext !== undefined) return parse(plaintext);
      }
    } else if (version === V1) {
      if (raw.length <= V1_OVERHEAD || raw.toString('base64url') !== value) return undefined;
      const hint = raw.readUInt32BE(1);
      for (let i = 0; i < this.v1Keys.length; i++) {
        if (this.v1Hints[i] !== hint) continue;
        const plaintext = decrypt(this.v1Keys[i], raw, HINT_END, V1_IV_END);
        if (plaintext !== undefined) return parse(plaintext);
      }
    }
    return undefined;
  }
}

/** Opens `raw` = header | … | IV at [ivStart, ivEnd) | ciphertext | tag, with the header as AAD. */
function decrypt(key: KeyObject | Buffer, raw: Buffer, ivStart: number, ivEnd: number): string | undefined {
  const tagStart = raw.length - TAG_BYTES;
  const decipher = createDecipheriv(ALGORITHM, key, raw.subarray(ivStart, ivEnd), CIPHER_OPTIONS);
  decipher.setAAD(raw.subarray(0, HINT_END));
  decipher.setAuthTag(raw.subarray(tagStart));
  const plaintext = decipher.update(raw.subarray(ivEnd, tagStart));
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
  if (!Array.isArray(p) || p.length < 4 || p.length > 8) return undefined;
  const [id, expiresAt, createdAt, rawData, maxAge, rawFlash, session, user] = p as unknown[];
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
  if (p.length >= 6 && !(p.length >= 7 && rawFlash === null)) {
    if (!isRecordObject(rawFlash)) return undefined;
    const flash: Record<string, unknown[]> = Object.create(null);
    for (const key of Object.keys(rawFlash)) {
      const list = rawFlash[key];
      if (!Array.isArray(list)) return undefined;
      flash[key] = list;
    }
    meta.flash = flash;
  }
  if (p.length >= 7 && !(p.length === 8 && session === null)) {
    if (typeof session !== 'string') return undefined;
    meta.session = session;
  }
  if (p.length === 8) {
    if (!isUserTie(user)) return undefined;
    meta.user = user;
  }
  return { id, record: { data, meta, expiresAt } };
}
