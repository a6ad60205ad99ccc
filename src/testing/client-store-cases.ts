import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClientSessionStore, SessionRecord } from '../stores/session-store.interface.js';
import type { Skipped } from './case-runner.js';
import { AWKWARD_KEYS, AWKWARD_MESSAGES, AWKWARD_VALUES, HOSTILE_KEYS, hostileFlash, JSON_VALUES, UNICODE, type Entries } from './input-samples.js';
import { assertOwnKey, entriesToObject, expectRecord, guardPrototypes, newId, record } from './record-checks.js';

/** What a client-store case gets. */
export interface ClientCaseContext {
  /** A store made by the factory with one fresh secret. */
  store: ClientSessionStore;
  /** Another store from the factory with these secrets (the first seals, all open); closed after the case. */
  make: (secrets: readonly string[]) => Promise<ClientSessionStore>;
  /** A fresh secret the factory accepts. */
  secret: () => string;
  ttl: number;
  maxValueBytes: number;
}

/** One promise a client-side store makes. */
export interface ClientConformanceCase {
  name: string;
  run(ctx: ClientCaseContext): void | Skipped | Promise<void | Skipped>;
}

const MARGIN_MS = 25;

/** Opens `value`, failing the case if `open` throws: a cookie value is client input. */
function openSafely(store: ClientSessionStore, value: unknown, what: string): ReturnType<ClientSessionStore['open']> {
  try {
    return store.open(value as string);
  } catch (error) {
    throw new Error(`${what}: open() threw instead of returning undefined`, { cause: error });
  }
}

/** Seals `rec` under `id`, checks the announced length, opens it and checks it is what was sealed. */
function expectRoundTrip(store: ClientSessionStore, id: string, rec: SessionRecord, what: string): SessionRecord {
  const sealed = store.seal(id, rec);
  assert.equal(typeof sealed, 'string', `${what}: seal() returned no string`);
  assert.equal(store.sealedLength(id, rec), sealed.length, `${what}: sealedLength() differs from the length of what seal() returned`);
  const opened = openSafely(store, sealed, what);
  assert.ok(opened, `${what}: open() returned undefined for a value seal() just made`);
  assert.equal(opened.id, id, `${what}: open() returned another id`);
  expectRecord(opened.record, rec, what);
  return opened.record;
}

const withMeta = (entries: Entries, flash: Record<string, unknown[]> = { note: ['round-trip'] }): SessionRecord =>
  record(entries, { flash, maxAge: 60_000, session: 'prefs' });

const keyEntries: Entries = AWKWARD_KEYS.map((key, i) => [key, `value ${i}`]);

const roundTrips: ClientConformanceCase[] = [
  {
    name: 'open returns the id and the session that seal sealed, meta included',
    run({ store }) {
      expectRoundTrip(store, newId(), record([['userId', 42], ['name', 'Ada']]), 'data only');
      expectRoundTrip(store, newId(), record([], { maxAge: 30 * 24 * 3_600_000 }), 'maxAge');
      expectRoundTrip(store, newId(), record([['k', 'v']], { flash: { info: ['saved'], error: [{ code: 7 }], empty: [] } }), 'flash');
      expectRoundTrip(store, newId(), record([['k', 'v']], { session: 'prefs' }), 'the session name');
      expectRoundTrip(store, newId(), record([['k', 'v']], { session: 'späť \u0000 \ud83d 🍪', maxAge: 1, flash: { a: [] } }), 'an awkward session name with every meta field');
      const bare = expectRoundTrip(store, newId(), record([]), 'an empty session');
      for (const field of ['maxAge', 'flash', 'session']) assert.ok(!Object.hasOwn(bare.meta, field), `an absent meta field "${field}" came back`);
    },
  },
  {
    name: 'any id round-trips',
    run({ store }) {
      for (const id of ['', '../x', 'a\u0000b', 'x\ud83d', 'séssion-🍪', ' spaced\n', 'a'.repeat(1024)]) expectRoundTrip(store, id, record([['a', 1]]), `the id ${JSON.stringify(id.slice(0, 20))}`);
    },
  },
  { name: 'values of every JSON type round-trip', run: ({ store }) => void expectRoundTrip(store, newId(), withMeta(JSON_VALUES), 'JSON values') },
  { name: 'strings with a NUL character or a lone surrogate round-trip', run: ({ store }) => void expectRoundTrip(store, newId(), withMeta(AWKWARD_VALUES), 'awkward strings') },
  {
    name: 'data keys with a NUL character, a lone surrogate or a leading \\u0001 round-trip',
    run: ({ store }) => void expectRoundTrip(store, newId(), withMeta(keyEntries), 'awkward data keys'),
  },
  {
    name: 'flash keys and messages with a NUL character or a lone surrogate round-trip',
    run({ store }) {
      const flash = entriesToObject(AWKWARD_KEYS.map((key, i): [string, unknown[]] => [key, [`message ${i}`]]));
      expectRoundTrip(store, newId(), withMeta([['k', 1]], flash), 'awkward flash keys');
      expectRoundTrip(store, newId(), withMeta([['k', 1]], { info: [...AWKWARD_MESSAGES] }), 'awkward flash messages');
    },
  },
  { name: 'unicode keys and values round-trip', run: ({ store }) => void expectRoundTrip(store, newId(), withMeta(UNICODE), 'unicode') },
  {
    name: 'a large value and many keys round-trip',
    run({ store, maxValueBytes }) {
      const text = 'abcdefghijklmnopqrstuvwxyz0123456789-'.repeat(Math.ceil(maxValueBytes / 37)).slice(0, Math.max(1, maxValueBytes - 64));
      expectRoundTrip(store, newId(), record([['large', text]]), `a ${text.length}-character value`);
      const n = Math.max(2, Math.min(500, Math.floor(maxValueBytes / 24)));
      expectRoundTrip(store, newId(), record(Array.from({ length: n }, (_, i): [string, unknown] => [`k${i}`, i])), `${n} keys`);
    },
  },
  {
    name: 'keys named __proto__, constructor or prototype stay own plain data and pollute nothing',
    run: ({ store }) =>
      guardPrototypes('after hostile keys', () => {
        const opened = expectRoundTrip(store, newId(), record(HOSTILE_KEYS, { flash: hostileFlash() }), 'hostile data and flash keys');
        assertOwnKey(opened.data, '__proto__', 'a data key');
        assertOwnKey(opened.meta.flash, '__proto__', 'a flash key');
      }),
  },
];

/** Another character in the same place: the base64url character whose lowest bit differs, or 'A'. */
function changedChar(c: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const i = alphabet.indexOf(c);
  return i < 0 ? 'A' : alphabet[i ^ 1];
}

const failClosed: ClientConformanceCase[] = [
  {
    name: 'a changed, truncated or extended value opens to nothing, and open never throws',
    run({ store }) {
      const id = newId();
      const rec = record([['userId', 42], ['role', 'user']], { createdAt: 1_700_000_000_000, flash: { info: ['hi'] }, maxAge: 3_600_000, session: 'prefs' });
      const sealed = store.seal(id, rec);
      const original = JSON.stringify(openSafely(store, sealed, 'the untouched value'));
      const variants: [string, string][] = [];
      for (let i = 0; i < sealed.length; i++) {
        variants.push([`character ${i} changed`, sealed.slice(0, i) + changedChar(sealed[i]) + sealed.slice(i + 1)]);
        variants.push([`character ${i} replaced by "."`, `${sealed.slice(0, i)}.${sealed.slice(i + 1)}`]);
      }
      for (let n = 0; n < sealed.length; n++) variants.push([`truncated to ${n} characters`, sealed.slice(0, n)]);
      for (const extra of ['A', 'AAAA', '=', '.', sealed]) variants.push([`extended by ${JSON.stringify(extra.slice(0, 8))}`, sealed + extra]);
      variants.push(['with a leading space', ` ${sealed}`]);
      for (const [what, value] of variants) {
        const opened = openSafely(store, value, what);
        // The same content from another spelling of the same bytes is no forgery; anything else is.
        if (opened !== undefined) assert.equal(JSON.stringify(opened), original, `a value ${what} opened to another session`);
      }
      assert.ok(openSafely(store, sealed, 'the untouched value again'), 'the untouched value no longer opens');
    },
  },
  {
    name: 'garbage and non-string values open to undefined and never throw',
    run({ store }) {
      const garbage: unknown[] = ['', 'A', '%%%not.a.cookie%%%', 'A'.repeat(20_000), '\u0000', '\ud800', 'eyJhIjoxfQ', 'null', '[]', '{}', undefined, null, 42, {}, [], Buffer.from('x')];
      for (const value of garbage) assert.equal(openSafely(store, value, `the value ${String(value).slice(0, 20)}`), undefined, `open(${String(value).slice(0, 20)}) returned a session`);
    },
  },
  {
    name: 'an expired value opens to undefined, also one opened while it was live',
    async run({ store, ttl }) {
      assert.equal(openSafely(store, store.seal(newId(), record([['a', 1]], {}, Date.now() - 1000)), 'an expired value'), undefined, 'a value sealed already expired opened');
      for (let life = ttl; ; life *= 2) {
        const rec = record([['a', 1]], {}, Date.now() + life);
        const sealed = store.seal(newId(), rec);
        const early = openSafely(store, sealed, 'a live value');
        if (Date.now() < rec.expiresAt - MARGIN_MS) {
          assert.ok(early, 'a value opened before its expiry returned undefined');
          await sleep(Math.max(0, rec.expiresAt - Date.now()) + 50);
          assert.equal(openSafely(store, sealed, 'an expired value'), undefined, 'a value opened after its expiry returned a session');
          return;
        }
        if (life > 5000) throw new Error('sealing and opening one value took more than 5 s: too slow to check expiry');
      }
    },
  },
  {
    name: 'a value sealed by a store with another secret opens to undefined',
    async run({ make, secret }) {
      const [a, b] = [await make([secret()]), await make([secret()])];
      const rec = record([['userId', 42]]);
      assert.equal(openSafely(b, a.seal('id', rec), 'another secret'), undefined, 'a value sealed with another secret opened');
      assert.equal(openSafely(a, b.seal('id', rec), 'another secret'), undefined, 'a value sealed with another secret opened');
    },
  },
  {
    name: 'key rotation: a value sealed with an old secret opens while that secret is listed, and the first secret seals',
    async run({ make, secret }) {
      const [oldSecret, newSecret] = [secret(), secret()];
      const [old, rotated, newOnly, oldOnly] = [await make([oldSecret]), await make([newSecret, oldSecret]), await make([newSecret]), await make([oldSecret])];
      const rec = record([['userId', 42]], { flash: { info: ['x'] } });
      const before = openSafely(rotated, old.seal('old', rec), 'a value sealed with the old secret');
      assert.ok(before, 'a store given [new, old] could not open a value sealed with [old]');
      expectRecord(before.record, rec, 'a value sealed with the old secret');
      const sealed = rotated.seal('new', rec);
      assert.ok(openSafely(newOnly, sealed, 'sealed by [new, old]'), 'a value sealed by [new, old] does not open with [new]: the first secret must seal');
      assert.equal(openSafely(oldOnly, sealed, 'sealed by [new, old]'), undefined, 'a value sealed by [new, old] opens with [old] alone');
      assert.equal(openSafely(newOnly, old.seal('old', rec), 'a retired secret'), undefined, 'a value sealed with a secret no longer listed opened');
    },
  },
  {
    name: 'two seals of one session give different values (a fresh nonce each time)',
    run({ store }) {
      const rec = record([['a', 1]]);
      assert.notEqual(store.seal('same', rec), store.seal('same', rec), 'sealing one session twice gave the same value');
    },
  },
];

/** Every case a client-side store (the whole session sealed into the cookie) must pass. */
export const clientStoreCases: readonly ClientConformanceCase[] = [...roundTrips, ...failClosed];
