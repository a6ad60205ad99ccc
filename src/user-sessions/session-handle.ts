import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync } from 'node:crypto';
import { randomSlice } from '../session/random-pool.js';
import { decodeStoreKey, encodeStoreKey } from '../stores/session-store.interface.js';
import { XaesKey } from '../stores/xaes-256-gcm.js';

/*
 * A handle: base64url (no padding) of
 *   version (1 byte) | nonce (24 bytes) | ciphertext | GCM tag (16 bytes)
 * sealed with XAES-256-GCM under a key derived from the session's secret for this purpose and this
 * session name only, with the version and the session name as AAD. The plaintext is
 *   id length (2 bytes) | id | user id
 * each as UTF-8 of its `encodeStoreKey` form (so any string round-trips).
 * A handle is no session id: the id inside is encrypted, and no cookie, signature or store accepts
 * it; only `SessionService.endSession()` opens it.
 */
const VERSION = 1;
const NONCE_END = 25;
const TAG_BYTES = 16;
const OVERHEAD = NONCE_END + TAG_BYTES;
const HKDF_SALT = 'nest-sessions/user-session-handle/salt/v1';

/** Seals and opens the handles of one named session's listings. */
export class SessionHandles {
  private readonly keys: XaesKey[];
  private readonly aad: Buffer;

  constructor(secrets: readonly string[], sessionName: string) {
    this.keys = secrets.map((secret) => new XaesKey(createSecretKey(Buffer.from(hkdfSync('sha256', secret, HKDF_SALT, `nest-sessions/user-session-handle/v1/${sessionName}`, 32)))));
    this.aad = Buffer.concat([Buffer.of(VERSION), Buffer.from(sessionName, 'utf8')]);
  }

  seal(id: string, userId: string): string {
    const idBytes = Buffer.from(encodeStoreKey(id), 'utf8');
    const plaintext = Buffer.concat([Buffer.alloc(2), idBytes, Buffer.from(encodeStoreKey(userId), 'utf8')]);
    plaintext.writeUInt16BE(idBytes.length, 0);
    const header = Buffer.allocUnsafe(NONCE_END);
    header[0] = VERSION;
    randomSlice(24).copy(header, 1);
    const key = this.keys[0].messageKey(header.subarray(1, NONCE_END));
    const cipher = createCipheriv('aes-256-gcm', key, header.subarray(13, NONCE_END), { authTagLength: TAG_BYTES });
    key.fill(0);
    cipher.setAAD(this.aad);
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    return Buffer.concat([header, ciphertext, cipher.getAuthTag()]).toString('base64url');
  }

  /** The session id and user id sealed in `handle`, or undefined for anything this app did not seal for this session name. */
  open(handle: unknown): { id: string; userId: string } | undefined {
    if (typeof handle !== 'string' || handle.length > 2048) return undefined;
    const raw = Buffer.from(handle, 'base64url');
    // The decoder skips bad characters and ignores stray bits: accept only the canonical encoding.
    if (raw.length <= OVERHEAD + 2 || raw[0] !== VERSION || raw.toString('base64url') !== handle) return undefined;
    const tagStart = raw.length - TAG_BYTES;
    for (const xaes of this.keys) {
      const key = xaes.messageKey(raw.subarray(1, NONCE_END));
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(13, NONCE_END), { authTagLength: TAG_BYTES });
      key.fill(0);
      decipher.setAAD(this.aad);
      decipher.setAuthTag(raw.subarray(tagStart));
      const plaintext = decipher.update(raw.subarray(NONCE_END, tagStart));
      try {
        decipher.final();
      } catch {
        continue; // sealed under another secret of the ring, or not ours
      }
      const idLength = plaintext.readUInt16BE(0);
      if (2 + idLength > plaintext.length) return undefined;
      return { id: decodeStoreKey(plaintext.toString('utf8', 2, 2 + idLength)), userId: decodeStoreKey(plaintext.toString('utf8', 2 + idLength)) };
    }
    return undefined;
  }
}
