import { createHash, getRandomValues, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { generateSessionId, SessionIdSigner } from '../../src/session/session-id.js';

// The crypto calls the library makes are wrapped, so that a test can see them or answer in their
// place: ids must come from the OS CSPRNG, signatures must be compared with timingSafeEqual.
// Unless a test says otherwise, every wrapper does the real work.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  const wrapped = {
    randomBytes: vi.fn(actual.randomBytes),
    randomFillSync: vi.fn(actual.randomFillSync),
    getRandomValues: vi.fn(actual.getRandomValues),
    timingSafeEqual: vi.fn(actual.timingSafeEqual),
  };
  return { ...actual, ...wrapped, default: { ...actual, ...wrapped } };
});

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

/** `length` bytes nobody else would produce: SHA-256 of a counter, block after block. */
function knownBytes(length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0; i * 32 < length; i++) blocks.push(createHash('sha256').update(`block ${i}`).digest());
  return Buffer.concat(blocks).subarray(0, length);
}

/** Makes every CSPRNG call of node:crypto hand out `stream`, in order; returns how many bytes were taken. */
function csprngAnswers(stream: Buffer): () => number {
  let taken = 0;
  const next = (target: Uint8Array) => {
    if (taken + target.byteLength > stream.length) throw new Error('the test stream ran out');
    target.set(stream.subarray(taken, taken + target.byteLength));
    taken += target.byteLength;
  };
  vi.mocked(randomFillSync).mockImplementation((buffer: NodeJS.ArrayBufferView, offset = 0, size?: number) => {
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    next(bytes.subarray(offset, size === undefined ? undefined : offset + size));
    return buffer;
  });
  vi.mocked(randomBytes).mockImplementation((size: number) => {
    const bytes = Buffer.alloc(size);
    next(bytes);
    return bytes;
  });
  const getRandom = (<T extends ArrayBufferView>(array: T) => {
    next(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return array;
  }) as typeof getRandomValues;
  vi.mocked(getRandomValues).mockImplementation(getRandom);
  vi.spyOn(globalThis.crypto, 'getRandomValues').mockImplementation(getRandom);
  return () => taken;
}

/** session-id.ts and random-pool.ts evaluated anew: an empty pool, so the next id reads the CSPRNG. */
async function freshIdModule(): Promise<typeof import('../../src/session/session-id.js')> {
  vi.resetModules();
  return import('../../src/session/session-id.js');
}

afterEach(async () => {
  const actual = await vi.importActual<typeof import('node:crypto')>('node:crypto');
  vi.mocked(randomFillSync).mockImplementation(actual.randomFillSync);
  vi.mocked(randomBytes).mockImplementation(actual.randomBytes);
  vi.mocked(getRandomValues).mockImplementation(actual.getRandomValues);
  vi.clearAllMocks();
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

  it('is 32 bytes the OS CSPRNG gave, as they came: nothing from the clock, a counter or Math.random is mixed in', async () => {
    // 300 ids: more than one 8 KiB pool, so a refill is read from the CSPRNG too. The stream is
    // longer than that, for an implementation that reads ahead.
    const stream = knownBytes(64 * 1024);
    const taken = csprngAnswers(stream);
    const mathRandom = vi.spyOn(Math, 'random');
    const { generateSessionId: fresh } = await freshIdModule();
    for (let i = 0; i < 300; i++) {
      expect(fresh(), `id ${i}`).toBe(stream.subarray(i * 32, i * 32 + 32).toString('base64url'));
    }
    expect(taken()).toBeGreaterThanOrEqual(300 * 32);
    expect(mathRandom).not.toHaveBeenCalled();
  });

  it('makes no id at all when the CSPRNG fails (no weaker fallback)', async () => {
    const failure = new Error('entropy source unavailable');
    const refuse = () => {
      throw failure;
    };
    vi.mocked(randomFillSync).mockImplementation(refuse);
    vi.mocked(randomBytes).mockImplementation(refuse);
    vi.mocked(getRandomValues).mockImplementation(refuse);
    vi.spyOn(globalThis.crypto, 'getRandomValues').mockImplementation(refuse);
    const { generateSessionId: fresh } = await freshIdModule();
    expect(() => fresh()).toThrow(failure);
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
  // Timing cannot be measured reliably in a unit test; what can be checked is that the comparison is
  // crypto.timingSafeEqual's (node:crypto is wrapped above), and the behaviour around it: wrong
  // lengths refused without throwing (timingSafeEqual throws on unequal lengths), every altered
  // value and every other spelling of the same bytes refused.

  it('compares signatures with crypto.timingSafeEqual, trying every key of the ring, for genuine and forged values alike', () => {
    const compare = vi.mocked(timingSafeEqual);
    const ring = [KEY_B, KEY_A];
    const id = generateSessionId();
    const signedWithOldKey = new SessionIdSigner([KEY_A]).sign(id);
    const forged = `${id}.${'A'.repeat(43)}`;

    compare.mockClear();
    expect(new SessionIdSigner(ring).unsign(signedWithOldKey)).toEqual([id, false]);
    expect(compare.mock.calls.length).toBeGreaterThanOrEqual(ring.length);
    expect(compare.mock.results.some((result) => result.value === true)).toBe(true);

    compare.mockClear();
    expect(new SessionIdSigner(ring).unsign(forged)).toBeUndefined();
    expect(compare.mock.calls.length).toBeGreaterThanOrEqual(ring.length);
    expect(compare.mock.results.every((result) => result.value === false)).toBe(true);

    // Each comparison is of two whole signatures of equal length, never of a prefix.
    for (const [a, b] of compare.mock.calls) {
      expect(a.byteLength).toBe(b.byteLength);
      expect(a.byteLength).toBeGreaterThanOrEqual(32);
    }
  });

  it('refuses every other spelling of the same bytes: the unused bits of the last character, padding, the base64 alphabet', () => {
    const signer = new SessionIdSigner([KEY_A]);
    let tried = 0;
    for (let n = 0; n < 20; n++) {
      const id = generateSessionId();
      const signed = signer.sign(id);
      const signature = signed.slice(id.length + 1);
      for (const [part, text, respell] of [
        ['signature', signature, (s: string) => `${id}.${s}`],
        ['id', id, (s: string) => `${s}.${signature}`],
      ] as const) {
        const bytes = Buffer.from(text, 'base64url');
        const spellings = new Set<string>([`${text}=`, text.replace(/-/g, '+').replace(/_/g, '/')]);
        for (const c of BASE64URL) spellings.add(text.slice(0, -1) + c);
        spellings.delete(text);
        for (const spelling of spellings) {
          if (!Buffer.from(spelling, 'base64url').equals(bytes)) continue; // another value, not another spelling
          // A new signer each time, so nothing remembered from the genuine value can answer.
          expect(new SessionIdSigner([KEY_A]).unsign(respell(spelling)), `${part}: ${spelling}`).toBeUndefined();
          tried++;
        }
      }
      expect(signer.unsign(signed)).toEqual([id, true]);
    }
    // Every 43-character text has three other last characters for the same bytes, and a padded form.
    expect(tried).toBeGreaterThanOrEqual(20 * 2 * 4);
  });

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

  it("binds a value to its session's name: signed for one session, it verifies for no other, with the same secret", () => {
    const id = generateSessionId();
    const value = new SessionIdSigner([KEY_A], 'default').sign(id);
    expect(new SessionIdSigner([KEY_A], 'default').unsign(value)).toEqual([id, true]);
    expect(new SessionIdSigner([KEY_A], 'prefs').unsign(value)).toBeUndefined();
    expect(new SessionIdSigner([KEY_A], 'prefs').sign(id)).not.toBe(value);
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
