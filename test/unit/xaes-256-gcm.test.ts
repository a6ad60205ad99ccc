import { createCipheriv, createSecretKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { XaesKey } from '../../src/stores/xaes-256-gcm.js';

// The test vectors of https://c2sp.org/XAES-256-GCM.
describe('XAES-256-GCM key derivation', () => {
  const nonce = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWX');

  it('derives the specification\'s key and ciphertext for its first vector', () => {
    const key = new XaesKey(createSecretKey(Buffer.alloc(32, 1))).messageKey(nonce);
    expect(key.toString('hex')).toBe('c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b');
    const cipher = createCipheriv('aes-256-gcm', key, nonce.subarray(12), { authTagLength: 16 });
    const sealed = Buffer.concat([cipher.update('XAES-256-GCM'), cipher.final(), cipher.getAuthTag()]);
    expect(sealed.toString('hex')).toBe('ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271');
  });

  it('derives the specification\'s key for its second vector (the other branch of K1)', () => {
    expect(new XaesKey(createSecretKey(Buffer.alloc(32, 3))).messageKey(nonce).toString('hex')).toBe(
      'e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8',
    );
  });

  it('gives the same key for the same nonce however many were derived in between', () => {
    const xaes = new XaesKey(createSecretKey(Buffer.alloc(32, 1)));
    const first = xaes.messageKey(nonce).toString('hex');
    for (let i = 0; i < 100; i++) xaes.messageKey(Buffer.alloc(24, i));
    expect(xaes.messageKey(nonce).toString('hex')).toBe(first);
    expect(xaes.messageKey(Buffer.alloc(24, 7)).toString('hex')).not.toBe(first);
  });
});
