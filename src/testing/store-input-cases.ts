import assert from 'node:assert/strict';
import type { SessionStore } from '../session-store.interface.js';
import { expectGone, expectRecord, newId, patchOf, record, settle, type ConformanceCase } from './store-cases.js';

const JSON_VALUES: [string, unknown][] = [
  ['null', null], ['true', true], ['false', false], ['zero', 0], ['negative', -42], ['float', -0.125],
  ['pi', Math.PI], ['maxSafe', Number.MAX_SAFE_INTEGER], ['tiny', 5e-324], ['huge', 1e21], ['emptyString', ''],
  ['escapes', 'quote " backslash \\ newline \n tab \t'], ['emptyArray', []], ['emptyObject', {}],
  ['nested', { a: [1, { b: null, c: [true, false] }], d: { e: { f: 'deep' } } }],
  ['mixed', [null, 1, 'two', { three: 3 }, [4, [5]]]],
];

const UNICODE: [string, unknown][] = [
  ['😀 emoji', '🎉 party 👩‍👩‍👧 family'], ['مفتاح', 'مرحبا بالعالم'], ['𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝌆 astral 𠜎'],
  ['ключ', { 'вложенный': 'значение' }], ['e\u0301', 'combining é'], ['中文', ['汉字', '\u202eright-to-left override']],
];

const HOSTILE_KEYS: [string, unknown][] = [
  ['__proto__', { polluted: true }], ['constructor', { prototype: { polluted: true } }], ['prototype', { polluted: true }],
  ['hasOwnProperty', 'not a function'], ['toString', 1], ['plain', 'ok'],
];

function assertNotPolluted(): void {
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype was polluted through a session key');
  assert.equal(typeof ({}).hasOwnProperty, 'function', 'Object.prototype.hasOwnProperty was overwritten');
}

async function roundTrip(store: SessionStore, entries: [string, unknown][], what: string): Promise<void> {
  const id = newId();
  const rec = record(entries, { flash: { note: ['round-trip'] } });
  await store.set(id, rec);
  expectRecord(await store.get(id), rec, what);
  if (!store.patch) return;
  await store.set(id, record([['seed', 0]], rec.meta, rec.expiresAt));
  await store.patch(id, patchOf(rec, entries, ['seed']));
  expectRecord(await store.get(id), rec, `${what}, written by patch`);
}

const values: ConformanceCase[] = [
  { name: 'values of every JSON type round-trip', run: (store) => roundTrip(store, JSON_VALUES, 'JSON values') },
  {
    name: 'strings with a NUL character or a lone surrogate round-trip',
    run: (store) => roundTrip(store, [['nul', 'a\u0000b'], ['lone', 'x\ud83dy'], ['both', ['\u0000', '\udc00']]], 'awkward strings'),
  },
  { name: 'unicode keys and values round-trip', run: (store) => roundTrip(store, UNICODE, 'unicode') },
  {
    name: 'a large value round-trips',
    async run(store, ctx) {
      const pattern = '0123456789abcdefghijklmnopqrstuvwxyz-';
      const text = pattern.repeat(Math.ceil(ctx.maxValueBytes / pattern.length)).slice(0, Math.max(1, ctx.maxValueBytes - 64));
      await roundTrip(store, [['large', text]], `a ${text.length}-character value`);
    },
  },
  {
    name: 'many keys round-trip',
    async run(store, ctx) {
      const n = Math.max(2, Math.min(500, Math.floor(ctx.maxValueBytes / 24)));
      await roundTrip(store, Array.from({ length: n }, (_, i): [string, unknown] => [`key-${i}`, { i }]), `${n} keys`);
    },
  },
  {
    name: 'hostile keys (__proto__, constructor, prototype) stay plain data',
    async run(store) {
      const flash = JSON.parse('{"__proto__":["x"],"constructor":["y"]}') as Record<string, unknown[]>;
      await roundTrip(store, HOSTILE_KEYS, 'hostile keys');
      assertNotPolluted();
      const id = newId();
      const rec = record(HOSTILE_KEYS, { flash });
      await store.set(id, rec);
      expectRecord(await store.get(id), rec, 'hostile keys in data and flash');
      if (store.patch) {
        await store.patch(id, patchOf(rec, [['__proto__', 'replaced'], ['valueOf', { polluted: true }]], ['constructor']));
        const want = record([...HOSTILE_KEYS.filter(([k]) => k !== 'constructor' && k !== '__proto__'), ['__proto__', 'replaced'], ['valueOf', { polluted: true }]], rec.meta, rec.expiresAt);
        expectRecord(await store.get(id), want, 'hostile keys after a patch');
      }
      assertNotPolluted();
    },
  },
];

const HOSTILE_IDS: [string, (other: string) => string][] = [
  ['"../x"', () => '../x'], ['"..\\x"', () => '..\\x'], ['"/etc/passwd"', () => '/etc/passwd'],
  ['with a NUL byte', (other) => `${other}\u0000.json`], ['empty', () => ''], ['10 KB long', () => 'a'.repeat(10 * 1024)],
  ['unicode', () => 'séssion-🍪-ключ'], ['"x/../<another id>"', (other) => `x/../${other}`], ['"./<another id>"', (other) => `./${other}`],
  ['".."', () => '..'], ['with spaces and a newline', (other) => ` ${other}\n`],
];

const hostileIds: ConformanceCase[] = HOSTILE_IDS.map(([label, make]) => ({
  name: `hostile id ${label} round-trips or is refused, and no other session is touched`,
  async run(store) {
    const other = newId();
    const otherRec = record([['owner', 'other']]);
    await store.set(other, otherRec);
    const id = make(other);
    await settle(() => store.destroy(id)); // a leftover of an earlier run on a shared back-end
    const before = await settle(() => store.get(id));
    if (before.ok) assert.equal(before.value, undefined, 'get() of a hostile id returned a session before anything was written under it');
    const rec = record([['owner', 'hostile']]);
    const written = await settle(() => store.set(id, rec));
    if (written.ok) {
      expectRecord(await store.get(id), rec, 'a hostile id the store accepted');
      expectRecord(await store.get(other), otherRec, 'another session after set() of a hostile id');
      if (store.patch) await store.patch(id, patchOf(rec, [['patched', true]]));
      await store.touch(id, rec.expiresAt + 1000);
      expectRecord(await store.get(other), otherRec, 'another session after patch() and touch() of a hostile id');
      await store.destroy(id);
      await expectGone(store, id, 'a destroyed hostile id');
    } else {
      await settle(() => store.patch?.(id, patchOf(rec, [['patched', true]])));
      await settle(() => store.touch(id, rec.expiresAt + 1000));
      await settle(() => store.destroy(id));
      const after = await settle(() => store.get(id));
      if (after.ok) assert.equal(after.value, undefined, 'get() of a refused hostile id returned a session');
    }
    expectRecord(await store.get(other), otherRec, 'another session after every call with a hostile id');
    const later = newId();
    await store.set(later, rec);
    expectRecord(await store.get(later), rec, 'a valid id written after the hostile one');
  },
}));

type Jar = SessionStore & { jar: Map<string, string> };

const sealing: ConformanceCase[] = [
  {
    name: 'a tampered or malformed cookie value opens to nothing',
    needs: 'jar',
    async run(store) {
      const jar = (store as Jar).jar;
      const id = newId();
      const rec = record([['userId', 42]]);
      await store.set(id, rec);
      const sealed = jar.get(id);
      assert.ok(sealed, 'set() left no cookie value');
      const mid = Math.floor(sealed.length / 2);
      const flipped = sealed.slice(0, mid) + (sealed[mid] === 'A' ? 'B' : 'A') + sealed.slice(mid + 1);
      for (const [what, value] of [['a flipped character', flipped], ['a truncated value', sealed.slice(0, -4)], ['an extended value', `${sealed}AAAA`], ['an empty value', ''], ['garbage', '%%%not.a.cookie%%%'], ['a long value', 'A'.repeat(20_000)]]) {
        jar.set(id, value);
        await expectGone(store, id, `a cookie with ${what}`);
      }
      jar.set(id, sealed);
      expectRecord(await store.get(id), rec, 'the untouched cookie value');
    },
  },
];

/** Cases about what goes in: every JSON value, unicode, size, hostile keys and ids, tampered cookies. */
export const inputCases: readonly ConformanceCase[] = [...values, ...hostileIds, ...sealing];
