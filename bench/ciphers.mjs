// Candidate AEADs for the CookieStore's seal and open, each on the same terms: a 32-byte key, a random
// nonce drawn from one pooled CSPRNG buffer (as the store draws its IVs), the output laid out as
// nonce | ciphertext | 16-byte tag, and open() returning undefined for anything that fails to
// authenticate. micro.mjs times them with the JSON and base64url around them; checkCiphers() proves
// each round-trips, rejects a flipped bit, and (XAES-256-GCM) matches its specification's vectors.
//
// nonceBits: the random nonce's size. budget: messages per key with random nonces before the chance of
// a repeated nonce (or derived key) reaches 2^-32, the bound NIST SP 800-38D sets for random IVs.
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';

const TAG = 16;
const GCM = { authTagLength: TAG };
const require = createRequire(import.meta.url);
const optional = (name) => { try { return require(name); } catch { return undefined; } };

// Nonces from a pooled CSPRNG buffer, refilled when used up (what the store does for its IVs).
const POOL = Buffer.allocUnsafe(4096);
let poolAt = POOL.length;
function randomNonce(bytes) {
  if (poolAt + bytes > POOL.length) { randomFillSync(POOL); poolAt = 0; }
  const out = POOL.subarray(poolAt, poolAt + bytes);
  poolAt += bytes;
  return out;
}

/** An AEAD through Node's createCipheriv, nonce | ciphertext | tag; `keyFor(nonce)` gives the key and IV. */
function nodeAead(algorithm, nonceBytes, keyFor) {
  return {
    seal(plaintext) {
      const out = Buffer.allocUnsafe(nonceBytes + plaintext.length + TAG);
      const nonce = out.subarray(0, nonceBytes);
      randomNonce(nonceBytes).copy(nonce);
      const { key, iv } = keyFor(nonce);
      const cipher = createCipheriv(algorithm, key, iv, GCM);
      const written = cipher.update(plaintext).copy(out, nonceBytes);
      cipher.final();
      cipher.getAuthTag().copy(out, nonceBytes + written);
      return out;
    },
    open(sealed) {
      if (sealed.length < nonceBytes + TAG) return undefined;
      const { key, iv } = keyFor(sealed.subarray(0, nonceBytes));
      const decipher = createDecipheriv(algorithm, key, iv, GCM);
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
      const plaintext = decipher.update(sealed.subarray(nonceBytes, sealed.length - TAG));
      try { decipher.final(); } catch { return undefined; }
      return plaintext;
    },
  };
}

/**
 * XAES-256-GCM (https://c2sp.org/XAES-256-GCM): per message, Kx = CMAC-KDF(K, N[:12]) by two AES-256
 * block encryptions, then AES-256-GCM(Kx, N[12:]). The block encryptions go through one long-lived
 * AES-256-ECB cipher object (ECB keeps no state between blocks), so the derivation costs no cipher setup.
 */
function xaes256gcm(key) {
  const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
  const L = ecb.update(Buffer.alloc(16));
  const K1 = Buffer.allocUnsafe(16);
  for (let i = 0; i < 16; i++) K1[i] = ((L[i] << 1) | (i < 15 ? L[i + 1] >> 7 : 0)) & 0xff;
  if (L[0] & 0x80) K1[15] ^= 0x87;
  const M = Buffer.allocUnsafe(32);
  const derive = (nonce) => {
    // M1 = 00 01 'X' 00 || N[:12], M2 = 00 02 'X' 00 || N[:12], each xored with K1.
    M[0] = 0; M[1] = 1; M[2] = 0x58; M[3] = 0;
    nonce.copy(M, 4, 0, 12);
    M.copy(M, 16, 0, 16);
    M[17] = 2;
    for (let i = 0; i < 16; i++) { M[i] ^= K1[i]; M[16 + i] ^= K1[i]; }
    return { key: ecb.update(M), iv: nonce.subarray(12, 24) };
  };
  return { ...nodeAead('aes-256-gcm', 24, derive), derive };
}

/** libsodium-style AEADs (sodium-native or libsodium-wrappers), nonce | ciphertext+tag. */
function sodiumNativeAead(sodium, kind, key) {
  const fns = {
    xchacha: [sodium.crypto_aead_xchacha20poly1305_ietf_encrypt, sodium.crypto_aead_xchacha20poly1305_ietf_decrypt, sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, true],
    chacha: [sodium.crypto_aead_chacha20poly1305_ietf_encrypt, sodium.crypto_aead_chacha20poly1305_ietf_decrypt, sodium.crypto_aead_chacha20poly1305_ietf_NPUBBYTES, true],
    secretbox: [sodium.crypto_secretbox_easy, sodium.crypto_secretbox_open_easy, sodium.crypto_secretbox_NONCEBYTES, false],
  }[kind];
  const [encrypt, decrypt, nonceBytes, aead] = fns;
  return {
    seal(plaintext) {
      const out = Buffer.allocUnsafe(nonceBytes + plaintext.length + TAG);
      const nonce = out.subarray(0, nonceBytes);
      randomNonce(nonceBytes).copy(nonce);
      const body = out.subarray(nonceBytes);
      if (aead) encrypt(body, plaintext, null, null, nonce, key);
      else encrypt(body, plaintext, nonce, key);
      return out;
    },
    open(sealed) {
      if (sealed.length < nonceBytes + TAG) return undefined;
      const nonce = sealed.subarray(0, nonceBytes);
      const body = sealed.subarray(nonceBytes);
      const plaintext = Buffer.allocUnsafe(body.length - TAG);
      try {
        if (aead) decrypt(plaintext, null, body, null, nonce, key);
        else if (!decrypt(plaintext, body, nonce, key)) return undefined;
      } catch {
        return undefined;
      }
      return plaintext;
    },
  };
}

/** @noble/ciphers (audited, pure JavaScript): `make(key, nonce)` is one of its AEAD constructors. */
function nobleAead(make, key, nonceBytes) {
  return {
    seal(plaintext) {
      const nonce = Buffer.from(randomNonce(nonceBytes));
      const body = make(key, nonce).encrypt(plaintext);
      return Buffer.concat([nonce, body], nonceBytes + body.length);
    },
    open(sealed) {
      try {
        const body = make(key, sealed.subarray(0, nonceBytes)).decrypt(sealed.subarray(nonceBytes));
        return Buffer.from(body.buffer, body.byteOffset, body.length);
      } catch {
        return undefined;
      }
    },
  };
}

function libsodiumJsAead(sodium, key) {
  const nonceBytes = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  return {
    seal(plaintext) {
      const nonce = randomNonce(nonceBytes);
      const body = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, null, null, nonce, key);
      return Buffer.concat([nonce, body], nonceBytes + body.length);
    },
    open(sealed) {
      try {
        const plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, sealed.subarray(nonceBytes), null, sealed.subarray(0, nonceBytes), key);
        return Buffer.from(plain.buffer, plain.byteOffset, plain.length);
      } catch {
        return undefined;
      }
    },
  };
}

const B96 = '2^32';
const B192 = '2^80';

/**
 * The candidates available here: [{ id, label, source, nonceBits, budget, note, seal, open }].
 * Optional packages (sodium-native, @noble/ciphers, libsodium-wrappers) that do not load are skipped.
 */
export async function cipherCandidates() {
  const key = randomFillSync(Buffer.allocUnsafe(32));
  const keyObject = createSecretKey(key);
  const list = [];
  const add = (c) => list.push(c);

  add({ id: 'aes-gcm', label: 'AES-256-GCM, random 96-bit IV (current)', source: 'node:crypto', nonceBits: 96, budget: B96,
    ...nodeAead('aes-256-gcm', 12, (iv) => ({ key: keyObject, iv })) });
  add({ id: 'chacha', label: 'ChaCha20-Poly1305, random 96-bit nonce', source: 'node:crypto', nonceBits: 96, budget: B96,
    ...nodeAead('chacha20-poly1305', 12, (iv) => ({ key: keyObject, iv })) });
  const xaes = xaes256gcm(key);
  add({ id: 'xaes', label: 'XAES-256-GCM (C2SP): CMAC-KDF subkey from N[:12] via a reused AES-ECB object, GCM with N[12:]', source: 'node:crypto', nonceBits: 192, budget: B192, seal: xaes.seal, open: xaes.open, derive: xaes.derive });
  const ZERO_IV = Buffer.alloc(12);
  add({ id: 'hmac-gcm', label: 'AES-256-GCM, key = HMAC-SHA256(K, 192-bit nonce), zero IV', source: 'node:crypto', nonceBits: 192, budget: B192,
    ...nodeAead('aes-256-gcm', 24, (nonce) => ({ key: createHmac('sha256', keyObject).update(nonce).digest(), iv: ZERO_IV })) });
  const INFO = Buffer.from('nest-sessions cookie v2');
  add({ id: 'hkdf-gcm', label: 'AES-256-GCM, key = HKDF-SHA256(K, salt = 192-bit nonce), zero IV', source: 'node:crypto', nonceBits: 192, budget: B192,
    ...nodeAead('aes-256-gcm', 24, (nonce) => ({ key: Buffer.from(hkdfSync('sha256', keyObject, nonce, INFO, 32)), iv: ZERO_IV })) });

  const sodium = optional('sodium-native');
  if (sodium) {
    add({ id: 'sn-xchacha', label: 'XChaCha20-Poly1305 (crypto_aead_xchacha20poly1305_ietf)', source: 'sodium-native', nonceBits: 192, budget: B192, ...sodiumNativeAead(sodium, 'xchacha', key) });
    add({ id: 'sn-secretbox', label: 'XSalsa20-Poly1305 (crypto_secretbox_easy)', source: 'sodium-native', nonceBits: 192, budget: B192, ...sodiumNativeAead(sodium, 'secretbox', key) });
    add({ id: 'sn-chacha', label: 'ChaCha20-Poly1305 IETF (crypto_aead_chacha20poly1305_ietf)', source: 'sodium-native', nonceBits: 96, budget: B96, ...sodiumNativeAead(sodium, 'chacha', key) });
  }
  const noble = await import('@noble/ciphers/chacha.js').catch(() => undefined);
  const nobleAes = await import('@noble/ciphers/aes.js').catch(() => undefined);
  if (noble) {
    add({ id: 'noble-xchacha', label: 'XChaCha20-Poly1305', source: '@noble/ciphers (pure JS)', nonceBits: 192, budget: B192, ...nobleAead(noble.xchacha20poly1305, key, 24) });
  }
  if (nobleAes) {
    add({ id: 'noble-gcmsiv', label: 'AES-256-GCM-SIV (nonce-misuse resistant), random 96-bit nonce', source: '@noble/ciphers (pure JS)', nonceBits: 96, budget: '2^32 (a repeat leaks only equality)', ...nobleAead(nobleAes.gcmsiv, key, 12) });
  }
  const libsodiumJs = optional('libsodium-wrappers');
  if (libsodiumJs) {
    await libsodiumJs.ready;
    add({ id: 'lsjs-xchacha', label: 'XChaCha20-Poly1305', source: 'libsodium-wrappers (WebAssembly)', nonceBits: 192, budget: B192, ...libsodiumJsAead(libsodiumJs, key) });
  }
  return list;
}

/** Throws unless every candidate round-trips and rejects tampering, and XAES-256-GCM matches C2SP's vectors. */
export function checkCiphers(list, sample) {
  for (const c of list) {
    const sealed = c.seal(sample);
    if (!c.open(sealed)?.equals(sample)) throw new Error(`${c.source} ${c.label}: does not round-trip`);
    if (sealed.equals(c.seal(sample))) throw new Error(`${c.source} ${c.label}: two seals are equal (nonce not random)`);
    for (const at of [0, sealed.length >> 1, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at] ^= 1;
      if (c.open(bad) !== undefined) throw new Error(`${c.source} ${c.label}: accepted a flipped bit at ${at}`);
    }
  }
  // https://c2sp.org/XAES-256-GCM test vectors (AAD empty only: the store uses none).
  const x = xaes256gcm(Buffer.alloc(32, 1));
  const nonce = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWX');
  const { key, iv } = x.derive(nonce);
  if (key.toString('hex') !== 'c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b') throw new Error('XAES-256-GCM: Kx differs from the C2SP vector');
  const cipher = createCipheriv('aes-256-gcm', key, iv, GCM);
  const out = Buffer.concat([cipher.update('XAES-256-GCM'), cipher.final(), cipher.getAuthTag()]).toString('hex');
  if (out !== 'ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271') throw new Error('XAES-256-GCM: ciphertext differs from the C2SP vector');
  const x3 = xaes256gcm(Buffer.alloc(32, 3)); // MSB(L) = 1: the other branch of K1
  if (x3.derive(nonce).key.toString('hex') !== 'e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8') throw new Error('XAES-256-GCM: Kx differs from the second C2SP vector');
}
