import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SessionMeta, SessionRecord } from '../../src/session-store.interface.js';
import { SessionConfigError } from '../../src/session.errors.js';
import { CookieStore } from '../../src/stores/cookie.store.js';

const SECRET_A = 'a-secret-of-at-least-32-characters-long-A';
const SECRET_B = 'b-secret-of-at-least-32-characters-long-B';
const HOUR = 3_600_000;

function record(data: Record<string, string> = { userId: '42', name: '"Ada"' }, meta?: Partial<SessionMeta>): SessionRecord {
  return { data, meta: { createdAt: Date.now(), ...meta }, expiresAt: Date.now() + HOUR };
}

/**
 * Seals a hand-made plaintext with the documented format and key derivation, to reach the checks
 * that run after decryption (the store's own seal only ever writes well-formed plaintexts).
 */
function sealRaw(secret: string, plaintext: string, opts: { version?: number; hint?: number } = {}): string {
  const okm = Buffer.from(
    hkdfSync('sha256', secret, 'nest-sessions/cookie-store/salt/v1', 'nest-sessions/cookie-store/aes-256-gcm-key+hint/v1', 36),
  );
  const header = Buffer.alloc(5);
  header[0] = opts.version ?? 1;
  header.writeUInt32BE(opts.hint ?? okm.readUInt32BE(32), 1);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', okm.subarray(0, 32), iv);
  cipher.setAAD(header);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([header, iv, ct, cipher.getAuthTag()]).toString('base64url');
}

function hintOf(secret: string): number {
  return Buffer.from(
    hkdfSync('sha256', secret, 'nest-sessions/cookie-store/salt/v1', 'nest-sessions/cookie-store/aes-256-gcm-key+hint/v1', 36),
  ).readUInt32BE(32);
}

const future = () => Date.now() + HOUR;

/** Fails when `value` or anything in it has a prototype other than Object.prototype, Array.prototype or null, or inherits `polluted`. */
function expectPlain(value: unknown, path: string): void {
  if (typeof value !== 'object' || value === null) return;
  const proto: unknown = Object.getPrototypeOf(value);
  expect([null, Object.prototype, Array.prototype], `the prototype of ${path}`).toContain(proto);
  expect('polluted' in value && !Object.hasOwn(value, 'polluted'), `${path} inherits "polluted"`).toBe(false);
  for (const key of Object.keys(value)) expectPlain((value as Record<string, unknown>)[key], `${path}.${key}`);
}

// Keys a hostile client or a careless app could use.
const keyArb = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }), // lone surrogates too
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', ''),
);
const dataArb = fc.dictionary(keyArb, fc.json());
// Through JSON once, as the engine hands it over (jsonValue may hold -0, which JSON writes as 0).
const flashArb = fc
  .dictionary(keyArb, fc.array(fc.jsonValue(), { maxLength: 3 }))
  .map((flash) => JSON.parse(JSON.stringify(flash)) as Record<string, unknown[]>);
const recordArb: fc.Arbitrary<SessionRecord> = fc
  .record({
    data: dataArb,
    createdAt: fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((n) => n * 1000),
    maxAge: fc.option(fc.nat(), { nil: undefined }),
    flash: fc.option(flashArb, { nil: undefined }),
    session: fc.option(keyArb, { nil: undefined }),
    ttl: fc.integer({ min: 60_000, max: 2 ** 31 - 1 }),
  })
  .map(({ data, createdAt, maxAge, flash, session, ttl }) => {
    const meta: SessionMeta = { createdAt };
    if (maxAge !== undefined) meta.maxAge = maxAge;
    if (flash !== undefined) meta.flash = flash;
    if (session !== undefined) meta.session = session;
    return { data, meta, expiresAt: Date.now() + ttl };
  });
const idArb = fc.oneof(fc.base64String(), fc.string({ unit: 'binary' }), fc.string());

afterEach(() => {
  vi.useRealTimers();
});

describe('CookieStore', () => {
  const store = new CookieStore({ secret: SECRET_A });

  it('is a client-side store with a 4096-byte default limit', () => {
    expect(store.clientSide).toBe(true);
    expect(store.maxCookieSize).toBe(4096);
    expect(new CookieStore({ secret: SECRET_A, maxCookieSize: 2000 }).maxCookieSize).toBe(2000);
  });

  describe('round trips', () => {
    it('opens what it sealed: id, data, meta and expiry (property)', () => {
      const big = new CookieStore({ secret: SECRET_A, maxCookieSize: 1_000_000 });
      fc.assert(
        fc.property(idArb, recordArb, (id, rec) => {
          const opened = big.open(big.seal(id, rec));
          expect(opened).toBeDefined();
          expect(opened!.id).toBe(id);
          expect(opened!.record).toEqual(rec);
          expect(Object.keys(opened!.record.data).sort()).toEqual(Object.keys(rec.data).sort());
        }),
        { numRuns: 300 },
      );
    });

    it('keeps absent optional meta absent and a flash without maxAge', () => {
      const plain = store.open(store.seal('id1', record({})))!;
      expect(plain.record.meta).not.toHaveProperty('maxAge');
      expect(plain.record.meta).not.toHaveProperty('flash');

      const withFlash = store.open(store.seal('id2', record({}, { flash: { info: ['hi', { n: 1 }] } })))!;
      expect(withFlash.record.meta).not.toHaveProperty('maxAge');
      expect(withFlash.record.meta.flash).toEqual({ info: ['hi', { n: 1 }] });

      const both = store.open(store.seal('id3', record({}, { maxAge: 0, flash: {} })))!;
      expect(both.record.meta.maxAge).toBe(0);
      expect(both.record.meta.flash).toEqual({});
      expect(both.record.meta).not.toHaveProperty('session');
    });

    it('carries the session name, with or without the other meta fields', () => {
      const metas: Partial<SessionMeta>[] = [{ session: 'prefs' }, { session: '', maxAge: 5 }, { session: 'a\u0000\ud800', flash: { info: ['x'] } }, { session: 'prefs', maxAge: 5, flash: {} }];
      for (const meta of metas) {
        const opened = store.open(store.seal('id', record({ a: '1' }, meta)))!;
        expect(opened.record.meta).toEqual({ createdAt: expect.any(Number), ...meta });
        if (meta.maxAge === undefined) expect(opened.record.meta).not.toHaveProperty('maxAge');
        if (meta.flash === undefined) expect(opened.record.meta).not.toHaveProperty('flash');
      }
    });

    it('opens values sealed before session names existed (version 1, up to six fields)', () => {
      // Sealed by the previous release with this secret; they expire in 2100.
      const old = new CookieStore({ secret: 'a-value-sealed-by-version-1-before-session-names' });
      const t = 4102444800000;
      const sealed: [string, string, SessionRecord][] = [
        ['plain', 'AQzwt2w59E0Q_9DfbJw9a0trgfI-Fdp00lRbBJrO6HqZFlM0U3ibRTbllAWn-mRqSqcOp4i54qvEPEhmcMyxMn4Y9FTWBYU2ohTw_yhaEtWUJb9M71fDZ7lj3q46', { data: { userId: '42' }, meta: { createdAt: 1700000000000 }, expiresAt: t }],
        ['maxAge', 'AQzwt2xj6HFwybJQkNqX6zESRawXhkbYz5DAZnaCE9svCnYefyJewFIA0mJKHVE1wM0WEAq5OHVO_GcS0IbzRoDGDjWRKJi9OVerTpGhFU0BCxUjK8UhFMtLfS5vMW2Enf_aOnkw1A', { data: { a: '"b"' }, meta: { createdAt: 1700000000000, maxAge: 2592000000 }, expiresAt: t }],
        ['flash', 'AQzwt2xyj21nSVAse7QMSPf4xhkyEk8rb5iwZiVzKkG24sQ6z-Snjn2H4EqPJDrXy_aAGUkY4wcV_5PT62f4uMc7kt4SGaYvKw_QOkF5kkzEL6Oxltu_XJ66-D5eATMeyA1zib0WtGjSqB3zQWR03Afi', { data: {}, meta: { createdAt: 1700000000000, flash: { info: ['welcome', { n: 1 }] } }, expiresAt: t }],
        ['both', 'AQzwt2zAxOZ2rdfILijj_saWA4ERQKaF2OYBbap9wkQVcVwgjSQ5cfW8CIcBBLnyz84Qt_rcAWJp14sxv_t4IvSbRz3gMPm3fJQ8eyyxq41SlTXl7qCkD2mvS6EgaT2fR599FuBN40jXyvvwi1DIU_Fk', { data: { k: '[1,2]' }, meta: { createdAt: 1700000000000, maxAge: 60000, flash: { error: ['bad'] } }, expiresAt: t }],
      ];
      for (const [name, value, rec] of sealed) {
        const opened = old.open(value);
        expect(opened, name).toBeDefined();
        expect(opened!.id).toBe(`old-id-${name}`);
        expect(opened!.record).toEqual(rec);
        expect(Object.keys(opened!.record.meta).sort()).toEqual(Object.keys(rec.meta).sort());
      }
    });

    it('keeps hostile keys as plain own entries, and inherited names are not data', () => {
      const data = JSON.parse('{"__proto__":"\\"p\\"","constructor":"1"}') as Record<string, string>;
      const flash = JSON.parse('{"__proto__":["x"]}') as Record<string, unknown[]>;
      const opened = store.open(store.seal('id', record(data, { flash })))!;
      expect(Object.keys(opened.record.data).sort()).toEqual(['__proto__', 'constructor']);
      expect(opened.record.data['__proto__']).toBe('"p"');
      expect(opened.record.data['constructor']).toBe('1');
      expect(Object.keys(opened.record.meta.flash!)).toEqual(['__proto__']);
      expect(opened.record.meta.flash!['__proto__']).toEqual(['x']);
      for (const object of [opened.record.data, opened.record.meta.flash]) expect([null, Object.prototype]).toContain(Object.getPrototypeOf(object));

      const plain = store.open(store.seal('id', record({ a: '1' })))!;
      expect(plain.record.data['toString']).toBeUndefined();
      expect(plain.record.data['constructor']).toBeUndefined();
    });

    it('gives a different value for each seal of the same session (fresh IV), both open', () => {
      const rec = record();
      const one = store.seal('same', rec);
      const two = store.seal('same', rec);
      expect(one).not.toBe(two);
      expect(store.open(one)?.record).toEqual(rec);
      expect(store.open(two)?.record).toEqual(rec);
    });

    it('opens what it sealed whatever its size: the size limit is checked by the engine, before sealing', () => {
      const small = new CookieStore({ secret: SECRET_A, maxCookieSize: 100 });
      const sealed = small.seal('id', record({ big: JSON.stringify('x'.repeat(10_000)) }));
      expect(sealed.length).toBeGreaterThan(small.maxCookieSize);
      expect(small.open(sealed)?.record.data['big']).toBe(JSON.stringify('x'.repeat(10_000)));
    });

    it('produces base64url only', () => {
      expect(store.seal('id', record())).toMatch(/^[A-Za-z0-9_-]+$/);
    });
  });

  describe('sealedLength', () => {
    it('equals seal(...).length (property)', () => {
      const big = new CookieStore({ secret: SECRET_A, maxCookieSize: 1_000_000 });
      fc.assert(
        fc.property(idArb, recordArb, (id, rec) => {
          expect(big.sealedLength(id, rec)).toBe(big.seal(id, rec).length);
        }),
        { numRuns: 500 },
      );
    });
  });

  describe('open fails closed', () => {
    const sealed = store.seal('the-id', record({ userId: '42', note: '"ünïcødé ✓"' }, { maxAge: HOUR, flash: { info: ['hi'] } }));

    it('opens the untouched value (so the failures below are caused by the change)', () => {
      expect(store.open(sealed)?.id).toBe('the-id');
    });

    it('returns undefined for arbitrary strings, never throws (property)', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.base64String()), (s) => {
          expect(store.open(s)).toBeUndefined();
        }),
        { numRuns: 1000 },
      );
    });

    it('returns undefined for arbitrary bytes, also behind a valid header, never throws (property)', () => {
      const header = Buffer.from(sealed, 'base64url').subarray(0, 5);
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (bytes, withHeader) => {
          const buf = withHeader ? Buffer.concat([header, bytes]) : Buffer.from(bytes);
          expect(store.open(buf.toString('base64url'))).toBeUndefined();
        }),
        { numRuns: 1000 },
      );
    });

    it('returns undefined for non-string input', () => {
      const values: unknown[] = [undefined, null, 42, {}, [], Buffer.from(sealed)];
      for (const v of values) {
        expect(store.open(v as string)).toBeUndefined();
      }
    });

    it('refuses every single flipped byte', () => {
      const raw = Buffer.from(sealed, 'base64url');
      for (let i = 0; i < raw.length; i++) {
        for (const mask of [0x01, 0x80, 0xff]) {
          const copy = Buffer.from(raw);
          copy[i] ^= mask;
          expect(store.open(copy.toString('base64url')), `byte ${i} ^ ${mask}`).toBeUndefined();
        }
      }
    });

    it('refuses every single changed character, including non-canonical encodings of the same bytes', () => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ';
      for (let i = 0; i < sealed.length; i++) {
        for (const c of alphabet) {
          if (c === sealed[i]) continue;
          const changed = sealed.slice(0, i) + c + sealed.slice(i + 1);
          expect(store.open(changed)).toBeUndefined();
        }
      }
      expect(store.open(sealed + '=')).toBeUndefined();
      expect(store.open(` ${sealed}`)).toBeUndefined();
    });

    it('refuses every truncation and extensions', () => {
      for (let n = 0; n < sealed.length; n++) expect(store.open(sealed.slice(0, n))).toBeUndefined();
      for (const extra of ['A', 'AA', 'AAA', 'AAAA', '_', sealed]) expect(store.open(sealed + extra)).toBeUndefined();
      const raw = Buffer.from(sealed, 'base64url');
      expect(store.open(Buffer.concat([raw, Buffer.alloc(1)]).toString('base64url'))).toBeUndefined();
      expect(store.open(Buffer.concat([raw, Buffer.alloc(16)]).toString('base64url'))).toBeUndefined();
    });


    it('refuses a value sealed under another secret, even carrying that store’s key hint', () => {
      const other = new CookieStore({ secret: SECRET_B });
      expect(other.open(sealed)).toBeUndefined();
      const forged = sealRaw(SECRET_A, JSON.stringify(['x', future(), 0, {}]), { hint: hintOf(SECRET_B) });
      expect(other.open(forged)).toBeUndefined();
    });

    it('refuses a value whose key hint matches no key, and an unknown version', () => {
      const good = JSON.stringify(['x', future(), 0, {}]);
      expect(store.open(sealRaw(SECRET_A, good))?.id).toBe('x');
      expect(store.open(sealRaw(SECRET_A, good, { hint: (hintOf(SECRET_A) + 1) >>> 0 }))).toBeUndefined();
      expect(store.open(sealRaw(SECRET_A, good, { version: 2 }))).toBeUndefined();
      expect(store.open(sealRaw(SECRET_A, good, { version: 0 }))).toBeUndefined();
    });

    it('refuses authentic plaintexts of the wrong shape or types', () => {
      const t = future();
      const good = sealRaw(SECRET_A, JSON.stringify(['x', t, 1, { a: '1' }, 5, { info: ['m'] }]));
      expect(store.open(good)?.record).toEqual({ data: { a: '1' }, meta: { createdAt: 1, maxAge: 5, flash: { info: ['m'] } }, expiresAt: t });
      const named = sealRaw(SECRET_A, JSON.stringify(['x', t, 1, { a: '1' }, null, null, 'prefs']));
      expect(store.open(named)?.record).toEqual({ data: { a: '1' }, meta: { createdAt: 1, session: 'prefs' }, expiresAt: t });

      const bad: string[] = [
        'not json',
        '',
        '{}',
        'null',
        '"x"',
        '[]',
        JSON.stringify(['x', t, 1]),
        JSON.stringify(['x', t, 1, {}, 5, {}, 7]),
        JSON.stringify([1, t, 1, {}]),
        JSON.stringify([null, t, 1, {}]),
        JSON.stringify(['x', String(t), 1, {}]),
        JSON.stringify(['x', null, 1, {}]),
        `["x",1e999,1,{}]`,
        JSON.stringify(['x', t, '1', {}]),
        JSON.stringify(['x', t, null, {}]),
        `["x",${t},-1e999,{}]`,
        JSON.stringify(['x', t, 1, []]),
        JSON.stringify(['x', t, 1, null]),
        JSON.stringify(['x', t, 1, 'data']),
        JSON.stringify(['x', t, 1, { a: 1 }]),
        JSON.stringify(['x', t, 1, { a: null }]),
        JSON.stringify(['x', t, 1, { a: ['1'] }]),
        JSON.stringify(['x', t, 1, { a: '1', b: { c: '1' } }]),
        '["x",' + t + ',1,{"__proto__":{"polluted":"yes"}}]',
        JSON.stringify(['x', t, 1, {}, '5']),
        JSON.stringify(['x', t, 1, {}, null]),
        `["x",${t},1,{},1e999]`,
        JSON.stringify(['x', t, 1, {}, 5, null]),
        JSON.stringify(['x', t, 1, {}, 5, []]),
        JSON.stringify(['x', t, 1, {}, 5, 'flash']),
        JSON.stringify(['x', t, 1, {}, 5, { info: 'm' }]),
        JSON.stringify(['x', t, 1, {}, 5, { info: { 0: 'm' } }]),
        JSON.stringify(['x', t, 1, {}, 'x', {}]),
        '["x",' + t + ',1,{},null,{"__proto__":{"polluted":"yes"}}]',
        JSON.stringify(['x', t, 1, {}, null, null, 7]),
        JSON.stringify(['x', t, 1, {}, null, null, null]),
        JSON.stringify(['x', t, 1, {}, null, [], 'prefs']),
        JSON.stringify(['x', t, 1, {}, null, { info: 'm' }, 'prefs']),
        JSON.stringify(['x', t, 1, {}, '5', null, 'prefs']),
        JSON.stringify(['x', t, 1, {}, null, null, 'prefs', 8]),
      ];
      for (const text of bad) expect(store.open(sealRaw(SECRET_A, text)), text).toBeUndefined();
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    });
  });

  describe('expiry', () => {
    it('refuses a session whose expiresAt has passed', () => {
      expect(store.open(store.seal('id', { ...record(), expiresAt: Date.now() - 1 }))).toBeUndefined();
      expect(store.open(sealRaw(SECRET_A, JSON.stringify(['x', 0, 0, {}])))).toBeUndefined();
    });

    it('opens a session until its expiresAt, and not from then on', () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(1_700_000_000_000);
      const sealed = store.seal('id', { data: {}, meta: { createdAt: Date.now() }, expiresAt: Date.now() + 1000 });
      vi.setSystemTime(1_700_000_000_999);
      expect(store.open(sealed)?.id).toBe('id');
      vi.setSystemTime(1_700_000_001_000);
      expect(store.open(sealed)).toBeUndefined();
    });
  });

  describe('key rotation', () => {
    const OLD = 'the-old-secret-with-32-or-more-characters';
    const NEW = 'the-new-secret-with-32-or-more-characters';

    it('opens with [new, old] a value sealed with [old]', () => {
      const sealed = new CookieStore({ secret: [OLD] }).seal('id', record());
      expect(new CookieStore({ secret: [NEW, OLD] }).open(sealed)?.id).toBe('id');
    });

    it('seals with the first secret of the list', () => {
      const sealed = new CookieStore({ secret: [NEW, OLD] }).seal('id', record());
      expect(new CookieStore({ secret: NEW }).open(sealed)?.id).toBe('id');
      expect(new CookieStore({ secret: OLD }).open(sealed)).toBeUndefined();
    });

    it('refuses with [new] alone a value sealed with [old]', () => {
      const sealed = new CookieStore({ secret: OLD }).seal('id', record());
      expect(new CookieStore({ secret: [NEW] }).open(sealed)).toBeUndefined();
    });

    it('derives a key of its own: the same bytes as another purpose’s key do not open it', () => {
      // A cookie encrypted with the raw secret (as if the secret were used directly) is refused.
      const header = Buffer.alloc(5);
      header[0] = 1;
      header.writeUInt32BE(hintOf(SECRET_A), 1);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', Buffer.from(SECRET_A.slice(0, 32)), iv);
      cipher.setAAD(header);
      const ct = Buffer.concat([cipher.update(JSON.stringify(['x', future(), 0, {}])), cipher.final()]);
      expect(store.open(Buffer.concat([header, iv, ct, cipher.getAuthTag()]).toString('base64url'))).toBeUndefined();
    });
  });

  describe('prototype safety', () => {
    it('leaves Object.prototype untouched after opening hostile payloads', () => {
      const before = Object.getOwnPropertyNames(Object.prototype).sort();
      const hostile = [
        store.seal(
          'id',
          record(JSON.parse('{"__proto__":"{\\"polluted\\":\\"yes\\"}","constructor":"{\\"prototype\\":{\\"polluted\\":1}}"}') as Record<string, string>, {
            flash: JSON.parse('{"__proto__":[{"polluted":"yes"}],"constructor":[{"prototype":{"polluted":"yes"}}]}') as Record<string, unknown[]>,
          }),
        ),
        sealRaw(SECRET_A, `["x",${future()},0,{"__proto__":"1","polluted":"1"},null,{"__proto__":[{"__proto__":{"polluted":"yes"}}]}]`),
        sealRaw(SECRET_A, `["x",${future()},0,{"__proto__":{"polluted":"yes"}}]`),
      ];
      const opened = hostile.map((v) => store.open(v));
      expect(opened[0]?.record.data['__proto__']).toBe('{"polluted":"yes"}');
      expect(opened[1]?.record.meta.flash?.['__proto__']).toEqual([JSON.parse('{"__proto__":{"polluted":"yes"}}')]);
      expect(opened[2]).toBeUndefined();
      for (const o of opened.slice(0, 2)) {
        // Assigning a key named __proto__ replaces an object's prototype instead of adding a key:
        // each such key must come back as an own key, and every object with a plain prototype.
        expect(Object.keys(o!.record.data)).toContain('__proto__');
        expect(Object.keys(o!.record.meta.flash!)).toContain('__proto__');
        expectPlain(o!.record, 'record');
      }
      expect(Object.hasOwn(opened[1]!.record.meta.flash!['__proto__'][0] as object, '__proto__')).toBe(true);
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
    });
  });

  describe('configuration errors', () => {
    const check = (options: unknown, ...parts: string[]) => {
      let error: unknown;
      try {
        new CookieStore(options as ConstructorParameters<typeof CookieStore>[0]);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SessionConfigError);
      for (const part of parts) expect((error as Error).message).toContain(part);
    };

    it('refuses a secret shorter than 32 characters, naming the option and the fix', () => {
      check({ secret: 'x'.repeat(31) }, 'CookieStore secret', '32', 'openssl rand -base64 48');
      expect(() => new CookieStore({ secret: 'x'.repeat(32) })).not.toThrow();
    });

    it('names the short entry of a list', () => {
      check({ secret: [SECRET_A, 'short'] }, 'CookieStore secret[1]', 'openssl rand');
      check({ secret: ['short', SECRET_A] }, 'CookieStore secret[0]');
    });

    it('refuses an empty list, a missing secret and a missing entry', () => {
      check({ secret: [] }, 'CookieStore secret', 'empty');
      check({}, 'CookieStore secret', 'missing');
      check(undefined, 'CookieStore secret');
      check({ secret: [SECRET_A, undefined] }, 'CookieStore secret[1]', 'missing');
    });

    it('refuses a maxCookieSize that is not a positive integer', () => {
      for (const maxCookieSize of [0, -1, 1.5, Number.NaN, '4096']) check({ secret: SECRET_A, maxCookieSize }, 'CookieStore maxCookieSize');
    });
  });
});
