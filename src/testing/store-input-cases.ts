import assert from 'node:assert/strict';
import type { SessionMeta, SessionPatch, SessionStore } from '../stores/session-store.interface.js';
import { AWKWARD_KEYS, AWKWARD_MESSAGES, AWKWARD_VALUES, HOSTILE_KEYS, hostileFlash, JSON_VALUES, UNICODE, type Entries } from './input-samples.js';
import {
  assertOwnKey,
  entriesToObject,
  expectRecord,
  guardPrototypes,
  newId,
  patchOf,
  record,
  settle,
} from './record-checks.js';
import { expectGone, type CaseContext, type ConformanceCase } from './store-cases.js';

/**
 * Writes `entries` (and `flash`) whole and reads them back; then writes them again through patches
 * onto a session that held other keys, and reads them back again.
 */
async function roundTrip(store: SessionStore, entries: Entries, what: string, flash: Record<string, unknown[]> = { note: ['round-trip'] }): Promise<void> {
  const id = newId();
  const rec = record(entries, { flash, maxAge: 60_000, session: 'prefs' });
  await store.set(id, rec);
  expectRecord(await store.get(id), rec, what);
  await store.set(id, record([['seed', 0]], { createdAt: rec.meta.createdAt, flash: { seed: [0] }, session: 'prefs' }, rec.expiresAt));
  const patch: SessionPatch = { ...patchOf(rec, entries, ['seed'], { maxAge: 60_000 }), flash: { set: flash, unset: ['seed'] } };
  await store.patch(id, patch);
  expectRecord(await store.get(id), rec, `${what}, written by patch`);
}

/** Unsets every key of `entries` and every flash key in `flashKeys` by patch, and checks that only the other key is left. */
async function unsetAll(store: SessionStore, entries: Entries, flashKeys: string[], what: string): Promise<void> {
  const id = newId();
  const meta: Partial<SessionMeta> = { flash: entriesToObject(flashKeys.map((k): [string, unknown[]] => [k, ['m']])) };
  const rec = record([...entries, ['kept', 1]], meta);
  await store.set(id, rec);
  await store.patch(id, { ...patchOf(rec, [], entries.map(([k]) => k)), flash: { set: {}, unset: flashKeys } });
  expectRecord(await store.get(id), record([['kept', 1]], { createdAt: rec.meta.createdAt }, rec.expiresAt), what);
}

const keyEntries: Entries = AWKWARD_KEYS.map((key, i) => [key, `value ${i}`]);
const keyFlash = (): Record<string, unknown[]> => entriesToObject(AWKWARD_KEYS.map((key, i): [string, unknown[]] => [key, [`message ${i}`]]));

const values: ConformanceCase[] = [
  { name: 'values of every JSON type round-trip', run: (store) => roundTrip(store, JSON_VALUES, 'JSON values') },
  { name: 'strings with a NUL character or a lone surrogate round-trip', run: (store) => roundTrip(store, AWKWARD_VALUES, 'awkward strings') },
  {
    name: 'data keys with a NUL character, a lone surrogate or a leading \\u0001 round-trip and can be unset',
    async run(store) {
      await roundTrip(store, keyEntries, 'awkward data keys');
      await unsetAll(store, keyEntries, [], 'awkward data keys unset by patch');
    },
  },
  {
    name: 'flash keys and messages with a NUL character or a lone surrogate round-trip and can be unset',
    async run(store) {
      await roundTrip(store, [['k', 1]], 'awkward flash keys', keyFlash());
      await roundTrip(store, [['k', 1]], 'awkward flash messages', { info: [...AWKWARD_MESSAGES], 'x\ud83d\u0000': [...AWKWARD_MESSAGES] });
      await unsetAll(store, [], [...AWKWARD_KEYS], 'awkward flash keys unset by patch');
    },
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
];

const pollution: ConformanceCase[] = [
  {
    name: 'data keys named __proto__, constructor or prototype stay own plain data and pollute nothing',
    run: (store) => guardPrototypes('after hostile data keys', async () => {
      await roundTrip(store, HOSTILE_KEYS, 'hostile data keys');
      const id = newId();
      const rec = record(HOSTILE_KEYS);
      await store.set(id, rec);
      assertOwnKey((await store.get(id))?.data, '__proto__', 'after set');
      await store.patch(id, patchOf(rec, [['__proto__', 'replaced'], ['valueOf', { polluted: true }]], ['constructor']));
      const want = record([...HOSTILE_KEYS.filter(([k]) => k !== 'constructor' && k !== '__proto__'), ['__proto__', 'replaced'], ['valueOf', { polluted: true }]], rec.meta, rec.expiresAt);
      const patched = await store.get(id);
      expectRecord(patched, want, 'hostile data keys after a patch');
      assertOwnKey(patched?.data, '__proto__', 'after a patch');
      assert.equal(patched?.data['__proto__'], '"replaced"', 'the data key __proto__ after a patch');
      await store.patch(id, patchOf(rec, [], ['__proto__']));
      assert.ok(!Object.hasOwn((await store.get(id))?.data ?? {}, '__proto__'), 'unsetting the data key __proto__ left it');
    }),
  },
  {
    name: 'flash keys named __proto__ or constructor stay own plain data and pollute nothing',
    run: (store) => guardPrototypes('after hostile flash keys', async () => {
      await roundTrip(store, [['k', 1]], 'hostile flash keys', hostileFlash());
      const id = newId();
      const rec = record([['k', 1]], { flash: hostileFlash() });
      await store.set(id, rec);
      assertOwnKey((await store.get(id))?.meta.flash, '__proto__', 'a flash key after set');
      const flash = hostileFlash();
      const set = entriesToObject<unknown[]>([['__proto__', [{ polluted: 'again' }]], ['valueOf', [{ polluted: true }]]]);
      await store.patch(id, { ...patchOf(rec, []), flash: { set, unset: ['constructor'] } });
      const want = entriesToObject<unknown[]>([...Object.entries(flash).filter(([k]) => k !== 'constructor' && k !== '__proto__'), ...Object.entries(set)]);
      const patched = await store.get(id);
      expectRecord(patched, { ...rec, meta: { ...rec.meta, flash: want } }, 'hostile flash keys after a patch');
      assertOwnKey(patched?.meta.flash, '__proto__', 'a flash key after a patch');
    }),
  },
];

/** Ids a careless store could turn into a path or a key outside its own space; `other` is a live session's id. */
const HOSTILE_IDS: [string, (other: string) => string][] = [
  ['"../x"', () => '../x'], ['"../../x"', () => '../../x'], ['"..\\x"', () => '..\\x'], ['"/etc/passwd"', () => '/etc/passwd'],
  ['with a NUL byte', (other) => `${other}\u0000.json`], ['empty', () => ''], ['10 KB long', () => 'a'.repeat(10 * 1024)],
  ['unicode', () => 'séssion-🍪-ключ'], ['"x/../<another id>"', (other) => `x/../${other}`], ['"./<another id>"', (other) => `./${other}`],
  ['"x/./../<another id>"', (other) => `x/./../${other}`], ['".."', () => '..'], ['with spaces and a newline', (other) => ` ${other}\n`],
  ['with a lone surrogate', (other) => `${other}\ud800`],
];

async function expectNothingOutside(ctx: CaseContext, what: string): Promise<void> {
  if (!ctx.writtenOutside) return;
  const outside = await ctx.writtenOutside();
  assert.deepEqual(outside, [], `${what}: the store wrote outside its own space (options.writtenOutside): ${JSON.stringify(outside)}`);
}

const hostileIds: ConformanceCase[] = HOSTILE_IDS.map(([label, make]) => ({
  name: `hostile id ${label} round-trips or is refused, and no other session is touched`,
  async run(store, ctx) {
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
      await store.patch(id, patchOf(rec, [['patched', true]]));
      await store.touch(id, rec.expiresAt + 1000);
      expectRecord(await store.get(other), otherRec, 'another session after patch() and touch() of a hostile id');
      await expectNothingOutside(ctx, 'after writing a hostile id');
      await store.destroy(id);
      await expectGone(store, id, 'a destroyed hostile id');
    } else {
      await settle(() => store.patch(id, patchOf(rec, [['patched', true]])));
      await settle(() => store.touch(id, rec.expiresAt + 1000));
      await settle(() => store.destroy(id));
      const after = await settle(() => store.get(id));
      if (after.ok) assert.equal(after.value, undefined, 'get() of a refused hostile id returned a session');
    }
    expectRecord(await store.get(other), otherRec, 'another session after every call with a hostile id');
    await expectNothingOutside(ctx, 'after every call with a hostile id');
    const later = newId();
    await store.set(later, rec);
    expectRecord(await store.get(later), rec, 'a valid id written after the hostile one');
  },
}));

/** Ids that a path or a lossy text encoding would turn into one place: each must stay a session of its own. */
const ALIASES: readonly string[] = ['../shared', 'y/../../shared', './../shared', 'z/./../../shared', 'shared\ud800', 'shared\ud801', 'shared\ufffd'];

const aliases: ConformanceCase = {
  name: 'ids that a path or an encoding would merge stay different sessions',
  async run(store, ctx) {
    const accepted: string[] = [];
    for (const [i, id] of ALIASES.entries()) {
      await settle(() => store.destroy(id)); // a leftover of an earlier run on a shared back-end
      if ((await settle(() => store.set(id, record([['alias', i]])))).ok) accepted.push(id);
    }
    for (const id of accepted) {
      const got = await store.get(id);
      assert.ok(got, `the session of id ${JSON.stringify(id)} is gone after the ids ${JSON.stringify(ALIASES)} were written`);
      const owner = JSON.parse(got.data.alias ?? 'null') as unknown;
      assert.equal(owner, ALIASES.indexOf(id), `id ${JSON.stringify(id)} reads the session of id ${JSON.stringify(ALIASES[owner as number])}`);
    }
    for (const id of accepted) await store.destroy(id);
    await expectNothingOutside(ctx, 'after writing ids that resolve to one path');
  },
};

/** Cases about what goes in: every JSON value, awkward and hostile keys, unicode, size, hostile ids. */
export const inputCases: readonly ConformanceCase[] = [...values, ...pollution, ...hostileIds, aliases];
