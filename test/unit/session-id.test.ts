import { afterEach, describe, expect, it, vi } from 'vitest';
import { generateSessionId, SessionIdSigner } from '../../src/session-id.js';

const KEY_A = 'first-signing-key-that-is-long-enough-0000000';
const KEY_B = 'second-signing-key-that-is-long-enough-111111';
const KEY_C = 'a-third-key-nobody-configured-for-this-app-22';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** How many bits differ between the bytes behind two ids. */
function bitsApart(a: string, b: string): number {
  const x = Buffer.from(a, 'base64url');
  const y = Buffer.from(b, 'base64url');
  let bits = 0;
  for (let i = 0; i < x.length; i++) {
    let v = x[i] ^ y[i];
    while (v !== 0) {
      bits += v & 1;
      v >>= 1;
    }
  }
  return bits;
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('generateSessionId', () => {
  it('gives 43 base64url characters that stand for exactly 32 bytes', () => {
    for (let i = 0; i < 1000; i++) {
      const id = generateSessionId();
      expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const bytes = Buffer.from(id, 'base64url');
      expect(bytes.length).toBe(32);
      expect(bytes.toString('base64url')).toBe(id);
    }
  });

  it('never issues the same id twice in a million', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1_000_000; i++) ids.add(generateSessionId());
    expect(ids.size).toBe(1_000_000);
  }, 60_000); // a million CSPRNG reads take several seconds on a slow machine

  it('looks like uniform random bits: about half of all bits set, and every byte value at every position', () => {
    const count = 20_000;
    let ones = 0;
    const perPosition = Array.from({ length: 32 }, () => new Set<number>());
    for (let i = 0; i < count; i++) {
      const bytes = Buffer.from(generateSessionId(), 'base64url');
      for (let p = 0; p < 32; p++) {
        let v = bytes[p];
        perPosition[p].add(v);
        while (v !== 0) {
          ones += v & 1;
          v >>= 1;
        }
      }
    }
    // 5,120,000 bits: one standard deviation is about 0.00022; allow more than 20 of them.
    expect(Math.abs(ones / (count * 256) - 0.5)).toBeLessThan(0.005);
    // 20,000 draws of a uniform byte miss one of 256 values with a chance of about 1e-30.
    for (const seen of perPosition) expect(seen.size).toBe(256);
  });

  it('is not derived from the clock: a frozen Date.now and frozen timers still give different ids', () => {
    vi.spyOn(Date, 'now').mockReturnValue(1_700_000_000_000);
    vi.useFakeTimers({ now: 1_700_000_000_000, toFake: ['Date', 'performance', 'hrtime'] });
    const ids = new Set<string>();
    for (let i = 0; i < 10_000; i++) ids.add(generateSessionId());
    expect(ids.size).toBe(10_000);
  });

  it('ids made within the same real millisecond differ', () => {
    let pairs = 0;
    for (let attempt = 0; attempt < 1000 && pairs < 100; attempt++) {
      const before = Date.now();
      const a = generateSessionId();
      const b = generateSessionId();
      if (Date.now() !== before) continue;
      pairs++;
      expect(a).not.toBe(b);
    }
    expect(pairs).toBeGreaterThan(0);
  });

  it('is not a counter: consecutive ids differ in about half of their 256 bits', () => {
    let previous = generateSessionId();
    for (let i = 0; i < 1000; i++) {
      const next = generateSessionId();
      // Two random 256-bit values are fewer than 64 bits apart with a chance below 1e-15.
      expect(bitsApart(previous, next)).toBeGreaterThan(64);
      previous = next;
    }
  });
});

describe('SessionIdSigner', () => {
  // The signature check uses crypto.timingSafeEqual (see src/session-id.ts). Timing cannot be
  // asserted reliably in a unit test, and an ESM namespace cannot be spied on, so these tests pin
  // the observable behaviour around it: wrong lengths are refused without throwing (timingSafeEqual
  // throws on unequal lengths), and every altered value is refused.

  it('signs as <id>.<43-character HMAC> and unsigns back to the id, signed with the current key', () => {
    const signer = new SessionIdSigner([KEY_A]);
    const id = generateSessionId();
    const signed = signer.sign(id);
    expect(signed.startsWith(`${id}.`)).toBe(true);
    expect(signed.slice(id.length + 1)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(signer.unsign(signed)).toEqual([id, true]);
    // Asking twice answers the same.
    expect(signer.unsign(signed)).toEqual([id, true]);
  });

  it('is deterministic per key and differs between keys and between ids', () => {
    const id = generateSessionId();
    const a1 = new SessionIdSigner([KEY_A]).sign(id);
    const a2 = new SessionIdSigner([KEY_A]).sign(id);
    const b = new SessionIdSigner([KEY_B]).sign(id);
    expect(a1).toBe(a2);
    expect(b).not.toBe(a1);
    expect(new SessionIdSigner([KEY_A]).sign(generateSessionId()).split('.')[1]).not.toBe(a1.split('.')[1]);
  });

  it('rotates keys: the first signs, all verify, and the result says whether the current key signed', () => {
    const id = generateSessionId();
    const old = new SessionIdSigner([KEY_A]);
    const rotated = new SessionIdSigner([KEY_B, KEY_A]);
    const fresh = new SessionIdSigner([KEY_B]);

    const oldCookie = old.sign(id);
    expect(rotated.unsign(oldCookie)).toEqual([id, false]);
    const resigned = rotated.sign(id);
    expect(resigned).not.toBe(oldCookie);
    expect(rotated.unsign(resigned)).toEqual([id, true]);
    expect(fresh.unsign(resigned)).toEqual([id, true]);
    // Once the old key is dropped, its cookies are refused; the old key cannot verify new ones.
    expect(fresh.unsign(oldCookie)).toBeUndefined();
    expect(old.unsign(resigned)).toBeUndefined();
    expect(new SessionIdSigner([KEY_C]).unsign(oldCookie)).toBeUndefined();
  });

  it('refuses every single-character change, deletion and insertion of a signed value', () => {
    const id = generateSessionId();
    const signed = new SessionIdSigner([KEY_A]).sign(id);
    const alphabet = `${BASE64URL}.=+/ `;
    let tried = 0;
    for (let i = 0; i < signed.length; i++) {
      for (const c of alphabet) {
        if (c === signed[i]) continue;
        const changed = signed.slice(0, i) + c + signed.slice(i + 1);
        // A new signer each time, so nothing remembered from the genuine value can answer.
        expect(new SessionIdSigner([KEY_A]).unsign(changed), changed).toBeUndefined();
        tried++;
      }
      expect(new SessionIdSigner([KEY_A]).unsign(signed.slice(0, i) + signed.slice(i + 1))).toBeUndefined();
      for (const c of ['A', '.', '_']) {
        expect(new SessionIdSigner([KEY_A]).unsign(signed.slice(0, i) + c + signed.slice(i))).toBeUndefined();
      }
    }
    expect(tried).toBeGreaterThan(signed.length * 60);
    // The same checks against a signer that has already verified the genuine value once.
    const warm = new SessionIdSigner([KEY_A]);
    expect(warm.unsign(signed)).toEqual([id, true]);
    for (let i = 0; i < signed.length; i++) {
      const c = signed[i] === 'A' ? 'B' : 'A';
      expect(warm.unsign(signed.slice(0, i) + c + signed.slice(i + 1))).toBeUndefined();
    }
  });

  it('refuses truncation, extension, empty parts and other sessions\' signatures', () => {
    const signer = new SessionIdSigner([KEY_A]);
    const id = generateSessionId();
    const other = generateSessionId();
    const signed = signer.sign(id);
    const [, signature] = signed.split('.');
    const otherSignature = signer.sign(other).split('.')[1];
    for (const value of [
      '',
      '.',
      id,
      `${id}.`,
      `.${signature}`,
      signed.slice(0, -1),
      `${signed}A`,
      `${signed}.${signature}`,
      `${id}.${otherSignature}`,
      `${other}.${signature}`,
      `${id}x.${signature}`,
      `${id}.${signature.slice(0, 42)}`,
      `${id}.${signature}=`,
      `${id}.${Buffer.from(signature, 'base64url').toString('base64')}`,
      signed.toUpperCase(),
      `${id}.${'A'.repeat(43)}`,
      `${id}.${'A'.repeat(10_000)}`,
    ]) {
      expect(signer.unsign(value), value.slice(0, 100)).toBeUndefined();
    }
  });

  it('refuses non-ASCII look-alikes of any character, in the id and in the signature', () => {
    const signer = new SessionIdSigner([KEY_A]);
    // Latin letters and digits with their Cyrillic, Greek, fullwidth and mathematical look-alikes.
    const lookAlikes: Record<string, string[]> = {
      A: ['\u0410', '\u0391', '\uFF21'],
      B: ['\u0412', '\u0392'],
      E: ['\u0415', '\u0395'],
      O: ['\u041E', '\u039F', '\u24C4'],
      a: ['\u0430', '\u0251', '\uFF41'],
      c: ['\u0441', '\u217D'],
      e: ['\u0435'],
      o: ['\u043E', '\u03BF', '\u2092'],
      p: ['\u0440'],
      x: ['\u0445', '\u00D7'],
      s: ['\u0455', '\u017F'],
      l: ['\u04CF', '\u2113'],
      '0': ['\uFF10', '\u2070', '\u{1D7CE}'],
      '1': ['\uFF11', '\u00B9'],
      '-': ['\u2010', '\u2011', '\u2212', '\u00AD'],
      _: ['\uFF3F'],
      '.': ['\u2024', '\uFF0E', '\u3002'],
    };
    // Signed values that use as many of those characters as possible.
    const samples: string[] = [];
    for (let i = 0; i < 50; i++) samples.push(signer.sign(generateSessionId()));
    samples.push(signer.sign('AaBbEeOo0123456789-_cxspl0'));
    let tried = 0;
    for (const signed of samples) {
      for (let i = 0; i < signed.length; i++) {
        for (const lookAlike of lookAlikes[signed[i]] ?? []) {
          const changed = signed.slice(0, i) + lookAlike + signed.slice(i + 1);
          expect(signer.unsign(changed), JSON.stringify(changed)).toBeUndefined();
          tried++;
        }
      }
      // A combining mark after any character.
      for (let i = 0; i < signed.length; i += 7) {
        expect(signer.unsign(signed.slice(0, i + 1) + '\u0301' + signed.slice(i + 1))).toBeUndefined();
      }
    }
    expect(tried).toBeGreaterThan(100);
  });

  it('answers refusal (never throws) for signatures of any byte length, including multi-byte ones of 43 characters', () => {
    const signer = new SessionIdSigner([KEY_A]);
    const id = generateSessionId();
    const signature = signer.sign(id).split('.')[1];
    for (const value of [
      `${id}.${'\u00E9'.repeat(43)}`, // 43 characters, 86 bytes
      `${id}.${signature.slice(0, 42)}\u00E9`, // 43 characters, 44 bytes
      `${id}.${signature.slice(0, 41)}\u{1F600}`, // 43 UTF-16 units, 45 bytes
      `${id}.${signature.slice(0, 42)}\u0000`,
      `${id}.${'\uFFFD'.repeat(43)}`,
      `${id}.${'\uD800'.repeat(43)}`, // lone surrogates
    ]) {
      expect(() => signer.unsign(value)).not.toThrow();
      expect(signer.unsign(value)).toBeUndefined();
    }
  });
});
