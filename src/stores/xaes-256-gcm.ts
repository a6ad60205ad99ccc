import { createCipheriv, type Cipher, type KeyObject } from 'node:crypto';

/**
 * The per-message key of XAES-256-GCM (https://c2sp.org/XAES-256-GCM): AES-256-GCM with a 192-bit
 * random nonce, so one key can seal 2^80 messages before a repeated nonce becomes likely (plain
 * AES-256-GCM with random 96-bit IVs: 2^32). The key for each message is derived from the first 12
 * bytes of the nonce by two AES-256 block encryptions (a CMAC-based KDF); the last 12 bytes are the
 * GCM nonce. The block encryptions go through one long-lived AES-256-ECB object (ECB keeps no state
 * between blocks), so the derivation costs no cipher setup.
 */
export class XaesKey {
  private readonly ecb: Cipher;
  private readonly k1 = Buffer.allocUnsafe(16);
  private readonly blocks = Buffer.allocUnsafe(32);

  constructor(key: KeyObject) {
    this.ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
    const l = this.ecb.update(Buffer.alloc(16));
    for (let i = 0; i < 16; i++) this.k1[i] = ((l[i] << 1) | (i < 15 ? l[i + 1] >> 7 : 0)) & 0xff;
    if ((l[0] & 0x80) !== 0) this.k1[15] ^= 0x87;
  }

  /** The AES-256-GCM key for a message with this 24-byte nonce; its GCM nonce is `nonce[12..24]`. */
  messageKey(nonce: Uint8Array): Buffer {
    const m = this.blocks;
    // M1 = 00 01 'X' 00 || N[:12], M2 = 00 02 'X' 00 || N[:12], each xored with K1.
    m[0] = 0;
    m[1] = 1;
    m[2] = 0x58;
    m[3] = 0;
    m.set(nonce.subarray(0, 12), 4);
    m.copy(m, 16, 0, 16);
    m[17] = 2;
    for (let i = 0; i < 16; i++) {
      m[i] ^= this.k1[i];
      m[16 + i] ^= this.k1[i];
    }
    return this.ecb.update(m);
  }
}
