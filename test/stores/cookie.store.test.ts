import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SessionMeta, SessionRecord } from '../../src/stores/session-store.interface.js';
import { SessionConfigError } from '../../src/session/session.errors.js';
import { CookieStore } from '../../src/stores/cookie.store.js';
import { XaesKey } from '../../src/stores/xaes-256-gcm.js';

const SECRET_A = 'a-secret-of-at-least-32-characters-long-A';
const SECRET_B = 'b-secret-of-at-least-32-characters-long-B';
const HOUR = 3_600_000;

function record(data: Record<string, string> = { userId: '42', name: '"Ada"' }, meta?: Partial<SessionMeta>): SessionRecord {
  return { data, meta: { createdAt: Date.now(), ...meta }, expiresAt: Date.now() + HOUR };
}

/** The sealed formats: 2 (XAES-256-GCM, 24-byte nonce) is written, 1 (AES-256-GCM, 12-byte IV) only read. */
type Format = 1 | 2;
const FORMATS: Format[] = [2, 1];
const HKDF_INFO: Record<Format, string> = {
  1: 'nest-sessions/cookie-store/aes-256-gcm-key+hint/v1',
  2: 'nest-sessions/cookie-store/xaes-256-gcm-key+hint/v2',
};

/** The documented key derivation: HKDF-SHA256 of the secret, 32 bytes of key then a 4-byte hint. */
function okmOf(secret: string, format: Format = 2): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'nest-sessions/cookie-store/salt/v1', HKDF_INFO[format], 36));
}

function hintOf(secret: string, format: Format = 2): number {
  return okmOf(secret, format).readUInt32BE(32);
}

/** The AES-256-GCM key and IV for a value of `format` with this nonce (24 bytes for 2, 12 for 1). */
function gcmKeyAndIv(key: Buffer, format: Format, nonce: Buffer): { key: Buffer; iv: Buffer } {
  if (format === 1) return { key, iv: nonce };
  return { key: new XaesKey(createSecretKey(key)).messageKey(nonce), iv: nonce.subarray(12) };
}

/**
 * Seals a hand-made plaintext with the documented format and key derivation, to reach the checks
 * that run after decryption (the store's own seal only ever writes well-formed plaintexts). `format`
 * picks the layout and cipher, `version` the byte written (and authenticated), `key` a key other
 * than the secret's.
 */
function sealRaw(secret: string, plaintext: string, opts: { format?: Format; version?: number; hint?: number; key?: Buffer } = {}): string {
  const format = opts.format ?? 2;
  const okm = okmOf(secret, format);
  const header = Buffer.alloc(5);
  header[0] = opts.version ?? format;
  header.writeUInt32BE(opts.hint ?? okm.readUInt32BE(32), 1);
  const nonce = randomBytes(format === 2 ? 24 : 12);
  const { key, iv } = gcmKeyAndIv(opts.key ?? okm.subarray(0, 32), format, nonce);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([header, nonce, ct, cipher.getAuthTag()]).toString('base64url');
}

/** Opens a version-2 value outside the store, from the specification alone: its plaintext, or throws. */
function openV2(secret: string, value: string): string {
  const raw = Buffer.from(value, 'base64url');
  const { key, iv } = gcmKeyAndIv(okmOf(secret, 2).subarray(0, 32), 2, raw.subarray(5, 29));
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(raw.subarray(0, 5));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([decipher.update(raw.subarray(29, raw.length - 16)), decipher.final()]).toString('utf8');
}

/** Values sealed by the store before version 2 (plain AES-256-GCM), with this secret; the first two expire in 2100. */
const V1_SECRET = 'a-value-sealed-by-version-1-of-the-cookie-format';
const V1_FIXTURES: { name: string; value: string; record: SessionRecord | undefined }[] = [
  {
    name: 'plain',
    value: 'ARN7lOo_6T4f513Xx4C24hNp7vkPV_fN3IL-aglSyjzJ7xbV11BYPbv4qRiX3KVCXFn8d1s2-qVOAG7lMqMfyM6WtZeihB__SuJ3CT-_3dhLkEWCGCe8TsYOK7M',
    record: { data: { userId: '42' }, meta: { createdAt: 1700000000000 }, expiresAt: 4102444800000 },
  },
  {
    name: 'named',
    value:
      'ARN7lOpvHGgojkFYyTSizG2NFY2oW9_Yqon8M0SqsJ3olouoX3SQTvTliDb6R-XqXUiyOIuaxKxQ4NR7RlehcGSWEekAOIPQhh7txuma_JAO55p15jbqV1xUy_dQzECFSzRRl3sGA8jX3HkLBhoFjbzK5ldCzMar6xXd5ZwHWYoYkbDe9rwZc1eAIg7Nm7ubOxyJRy0fGQU',
    record: {
      data: { a: '"b"', 'ünï': '✓' },
      meta: { createdAt: 1700000000000, maxAge: 2592000000, flash: { info: ['welcome', { n: 1 }] }, session: 'prefs' },
      expiresAt: 4102444800000,
    },
  },
  {
    // Expired on 2023-11-14: authentic, but opens to nothing.
    name: 'expired',
    value: 'ARN7lOpONpznHpneUmQPWcZnU76FkLXQd2mgOu3SHjZ3MVkstBFIkOWHQ8vdijWDmUFRRn6qGQauhjeMQiRHHnBI9puPyn-u9HpHleOvYOGsl4VsOMWrwRuMUMA-',
    record: undefined,
  },
];

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

    it('writes version 2: version | hint | 24-byte nonce | XAES-256-GCM ciphertext | tag, as the specification opens it', () => {
      const rec = record({ userId: '42' }, { maxAge: HOUR, session: 'prefs' });
      const sealed = store.seal('v2-id', rec);
      const raw = Buffer.from(sealed, 'base64url');
      expect(raw[0]).toBe(2);
      expect(raw.readUInt32BE(1)).toBe(hintOf(SECRET_A));
      const plaintext = openV2(SECRET_A, sealed);
      expect(JSON.parse(plaintext)).toEqual(['v2-id', rec.expiresAt, rec.meta.createdAt, rec.data, HOUR, null, 'prefs']);
      expect(raw.length).toBe(45 + Buffer.byteLength(plaintext));
      expect(store.open(sealed)).toEqual({ id: 'v2-id', record: rec });
      // A value made from the specification, not by the store, opens too.
      expect(store.open(sealRaw(SECRET_A, JSON.stringify(['x', rec.expiresAt, 1, { a: '1' }])))?.record).toEqual({
        data: { a: '1' },
        meta: { createdAt: 1 },
        expiresAt: rec.expiresAt,
      });
    });

    it('never reuses a nonce, nor the half that derives the message key, across seals of the same session', () => {
      const rec = record();
      const nonces = new Set<string>();
      const keyHalves = new Set<string>();
      const ivHalves = new Set<string>();
      const n = 2000; // 48 kB of nonces: several refills of the random pool
      for (let i = 0; i < n; i++) {
        const raw = Buffer.from(store.seal('same', rec), 'base64url');
        expect(raw[0]).toBe(2);
        nonces.add(raw.subarray(5, 29).toString('hex'));
        keyHalves.add(raw.subarray(5, 17).toString('hex'));
        ivHalves.add(raw.subarray(17, 29).toString('hex'));
      }
      expect(nonces.size).toBe(n);
      expect(keyHalves.size).toBe(n);
      expect(ivHalves.size).toBe(n);
    });
  });

  describe('values sealed by earlier versions (version 1, AES-256-GCM)', () => {
    const old = new CookieStore({ secret: V1_SECRET });

    it('opens them until they expire', () => {
      for (const { name, value, record: rec } of V1_FIXTURES) {
        expect(Buffer.from(value, 'base64url')[0], name).toBe(1);
        const opened = old.open(value);
        if (rec === undefined) {
          expect(opened, name).toBeUndefined();
          continue;
        }
        expect(opened, name).toBeDefined();
        expect(opened!.id).toBe(`v1-id-${name}`);
        expect(opened!.record).toEqual(rec);
        expect(Object.keys(opened!.record.meta).sort()).toEqual(Object.keys(rec.meta).sort());
      }
    });

    it('opens them with the secret anywhere in the list, and not without it', () => {
      const [{ value }] = V1_FIXTURES;
      expect(new CookieStore({ secret: [SECRET_A, V1_SECRET] }).open(value)?.id).toBe('v1-id-plain');
      expect(new CookieStore({ secret: [SECRET_A, SECRET_B] }).open(value)).toBeUndefined();
    });

    it('refuses every single flipped bit, truncation and extension of them', () => {
      for (const { name, value } of V1_FIXTURES.slice(0, 2)) {
        const raw = Buffer.from(value, 'base64url');
        for (let i = 0; i < raw.length; i++) {
          for (let bit = 0; bit < 8; bit++) {
            const copy = Buffer.from(raw);
            copy[i] ^= 1 << bit;
            expect(old.open(copy.toString('base64url')), `${name}: byte ${i} bit ${bit}`).toBeUndefined();
          }
        }
        for (let n = 0; n < raw.length; n++) expect(old.open(raw.subarray(0, n).toString('base64url'))).toBeUndefined();
        expect(old.open(Buffer.concat([raw, Buffer.alloc(12)]).toString('base64url'))).toBeUndefined();
        expect(old.open(`${value}A`)).toBeUndefined();
      }
    });

    it('accepts only their canonical encoding', () => {
      const { value } = V1_FIXTURES[0];
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. ';
      for (let i = 0; i < value.length; i++) {
        for (const c of alphabet) {
          if (c !== value[i]) expect(old.open(value.slice(0, i) + c + value.slice(i + 1)), `${i}: ${c}`).toBeUndefined();
        }
      }
      expect(old.open(`${value}=`)).toBeUndefined();
      expect(old.open(` ${value}`)).toBeUndefined();
    });

    it('keeps them apart from version 2: neither opens relabelled as the other', () => {
      const v1 = Buffer.from(V1_FIXTURES[0].value, 'base64url');
      v1[0] = 2;
      expect(old.open(v1.toString('base64url'))).toBeUndefined();
      const v2 = Buffer.from(old.seal('id', record()), 'base64url');
      v2[0] = 1;
      expect(old.open(v2.toString('base64url'))).toBeUndefined();
      // Each version has its own key and hint: version 1's key or hint in a version-2 value opens nothing.
      const good = JSON.stringify(['x', future(), 0, {}]);
      expect(old.open(sealRaw(V1_SECRET, good))?.id).toBe('x');
      expect(old.open(sealRaw(V1_SECRET, good, { key: okmOf(V1_SECRET, 1).subarray(0, 32) }))).toBeUndefined();
      expect(old.open(sealRaw(V1_SECRET, good, { hint: hintOf(V1_SECRET, 1) }))).toBeUndefined();
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

    it('equals seal(...).length around the cookie limit, for every length modulo 3 (property)', () => {
      // A value that fills a 4096-byte cookie: one data string of 2900 to 3100 characters, some multi-byte.
      const bigRecordArb = fc
        .tuple(fc.string({ minLength: 2900, maxLength: 3100, unit: fc.constantFrom('a', '"', 'é', '✓', '\\', '\u0000') }), recordArb)
        .map(([text, rec]): SessionRecord => ({ ...rec, data: { ...rec.data, big: text } }));
      fc.assert(
        fc.property(idArb, bigRecordArb, (id, rec) => {
          const sealed = store.seal(id, rec);
          expect(store.sealedLength(id, rec)).toBe(sealed.length);
          // 45 bytes around the plaintext, 12 more than version 1's 33.
          expect(Buffer.from(sealed, 'base64url').length).toBe(45 + Buffer.byteLength(openV2(SECRET_A, sealed)));
        }),
        { numRuns: 200 },
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

    it('refuses every change to the version, hint or nonce', () => {
      const raw = Buffer.from(sealed, 'base64url');
      expect(raw[0]).toBe(2);
      const changed = (edit: (copy: Buffer) => void): string => {
        const copy = Buffer.from(raw);
        edit(copy);
        return copy.toString('base64url');
      };
      for (let i = 0; i < 29; i++) {
        for (let bit = 0; bit < 8; bit++) {
          expect(store.open(changed((c) => (c[i] ^= 1 << bit))), `byte ${i} bit ${bit}`).toBeUndefined();
        }
      }
      for (const version of [0, 1, 3, 0x82, 0xff]) expect(store.open(changed((c) => (c[0] = version))), `version ${version}`).toBeUndefined();
      // The hint of another key of the ring, and this secret's version-1 hint.
      const ring = new CookieStore({ secret: [SECRET_A, SECRET_B] });
      expect(ring.open(sealed)?.id).toBe('the-id');
      for (const hint of [hintOf(SECRET_B), hintOf(SECRET_A, 1)]) expect(ring.open(changed((c) => c.writeUInt32BE(hint, 1)))).toBeUndefined();
      // The nonce's halves swapped, and either half taken from another sealed value.
      const other = Buffer.from(store.seal('the-id', record()), 'base64url');
      expect(store.open(changed((c) => raw.subarray(5, 17).copy(c, 17) && raw.subarray(17, 29).copy(c, 5)))).toBeUndefined();
      expect(store.open(changed((c) => other.copy(c, 5, 5, 17)))).toBeUndefined();
      expect(store.open(changed((c) => other.copy(c, 17, 17, 29)))).toBeUndefined();
    });

    it('refuses an authentic value of another version (3), whatever its layout', () => {
      const good = JSON.stringify(['x', future(), 0, {}]);
      for (const format of FORMATS) {
        expect(store.open(sealRaw(SECRET_A, good, { format }))?.id).toBe('x');
        expect(store.open(sealRaw(SECRET_A, good, { format, version: 3 }))).toBeUndefined();
      }
      const v3 = Buffer.from(store.seal('id', record()), 'base64url');
      v3[0] = 3;
      expect(store.open(v3.toString('base64url'))).toBeUndefined();
    });


    it('refuses a value sealed under another secret, even carrying that store’s key hint', () => {
      const other = new CookieStore({ secret: SECRET_B });
      expect(other.open(sealed)).toBeUndefined();
      for (const format of FORMATS) {
        const forged = sealRaw(SECRET_A, JSON.stringify(['x', future(), 0, {}]), { format, hint: hintOf(SECRET_B, format) });
        expect(other.open(forged), `version ${format}`).toBeUndefined();
      }
    });

    it('refuses a value whose key hint matches no key, and an unknown version', () => {
      const good = JSON.stringify(['x', future(), 0, {}]);
      for (const format of FORMATS) {
        expect(store.open(sealRaw(SECRET_A, good, { format }))?.id).toBe('x');
        expect(store.open(sealRaw(SECRET_A, good, { format, hint: (hintOf(SECRET_A, format) + 1) >>> 0 }))).toBeUndefined();
        expect(store.open(sealRaw(SECRET_A, good, { format, version: 3 - format }))).toBeUndefined();
        expect(store.open(sealRaw(SECRET_A, good, { format, version: 0 }))).toBeUndefined();
      }
    });

    it.each(FORMATS)('refuses authentic plaintexts of the wrong shape or types (version %i)', (format) => {
      const t = future();
      const good = sealRaw(SECRET_A, JSON.stringify(['x', t, 1, { a: '1' }, 5, { info: ['m'] }]), { format });
      expect(store.open(good)?.record).toEqual({ data: { a: '1' }, meta: { createdAt: 1, maxAge: 5, flash: { info: ['m'] } }, expiresAt: t });
      const named = sealRaw(SECRET_A, JSON.stringify(['x', t, 1, { a: '1' }, null, null, 'prefs']), { format });
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
      for (const text of bad) expect(store.open(sealRaw(SECRET_A, text, { format })), text).toBeUndefined();
      expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    });
  });

  describe('expiry', () => {
    it('refuses a session whose expiresAt has passed', () => {
      expect(store.open(store.seal('id', { ...record(), expiresAt: Date.now() - 1 }))).toBeUndefined();
      for (const format of FORMATS) expect(store.open(sealRaw(SECRET_A, JSON.stringify(['x', 0, 0, {}]), { format }))).toBeUndefined();
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
      const good = JSON.stringify(['x', future(), 0, {}]);
      for (const format of FORMATS) {
        expect(store.open(sealRaw(SECRET_A, good, { format }))?.id).toBe('x');
        expect(store.open(sealRaw(SECRET_A, good, { format, key: Buffer.from(SECRET_A.slice(0, 32)) })), `version ${format}`).toBeUndefined();
      }
    });

    it('rotates version-2 keys by hint: [new, old] opens what [old] sealed', () => {
      const sealed = new CookieStore({ secret: OLD }).seal('id', record());
      expect(Buffer.from(sealed, 'base64url').readUInt32BE(1)).toBe(hintOf(OLD));
      expect(new CookieStore({ secret: [NEW, OLD] }).open(sealed)?.id).toBe('id');
      expect(Buffer.from(new CookieStore({ secret: [NEW, OLD] }).seal('id', record()), 'base64url').readUInt32BE(1)).toBe(hintOf(NEW));
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

    it('refuses an empty list, a missing secret and a missing first or null entry; an unset older entry is left out', () => {
      check({ secret: [] }, 'CookieStore secret', 'empty');
      check({}, 'CookieStore secret', 'missing');
      check(undefined, 'CookieStore secret');
      check({ secret: [undefined, SECRET_A] }, 'CookieStore secret[0]', 'missing');
      check({ secret: [SECRET_A, null] }, 'CookieStore secret[1]', 'missing');
      // [process.env.KEY, process.env.OLD_KEY] with no rotation under way: sealed and opened with the first.
      const rotatedOut = new CookieStore({ secret: [SECRET_A, undefined] });
      expect(new CookieStore({ secret: SECRET_A }).open(rotatedOut.seal('id', { data: { a: '1' }, meta: { createdAt: 1 }, expiresAt: Date.now() + 60_000 }))?.record.data).toEqual({ a: '1' });
    });

    it('refuses a maxCookieSize that is not a positive integer', () => {
      for (const maxCookieSize of [0, -1, 1.5, Number.NaN, '4096']) check({ secret: SECRET_A, maxCookieSize }, 'CookieStore maxCookieSize');
    });
  });
});
