import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionMeta, SessionRecord, SessionStore } from '../session-store.interface.js';

/** What a case gets besides its store. */
export interface CaseContext {
  ttl: number;
  maxValueBytes: number;
  countSessions?: () => Promise<number>;
}

/** One promise a store makes, checked on a fresh store. `needs` names an optional feature. */
export interface ConformanceCase {
  name: string;
  needs?: 'patch' | 'reclaim' | 'jar';
  run(store: SessionStore, ctx: CaseContext): Promise<void>;
}

const LATER = 10 * 60_000;

/** An id like the engine's: 32 random bytes in base64url, so stores that share a back-end never collide. */
export const newId = (): string => randomBytes(32).toString('base64url');

/** A record whose values are the JSON text of `entries` (an array, so keys like __proto__ stay own keys). */
export function record(entries: [string, unknown][], meta: Partial<SessionMeta> = {}, expiresAt = Date.now() + LATER): SessionRecord {
  const data: Record<string, string> = {};
  for (const [key, value] of entries) define(data, key, JSON.stringify(value));
  return { data, meta: { createdAt: Date.now() - 1000, ...meta }, expiresAt };
}

function define(target: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Data as sorted [key, parsed value] pairs: equal JSON meaning, whatever the spacing a store keeps. */
function view(data: Record<string, string>): [string, unknown][] {
  return Object.keys(data)
    .sort()
    .map((key) => {
      const text = data[key];
      assert.equal(typeof text, 'string', `the value of key ${JSON.stringify(key)} came back as ${typeof text}; values are JSON text, kept as strings`);
      return [key, JSON.parse(text) as unknown];
    });
}

function same(actual: unknown, expected: unknown, what: string): void {
  try {
    assert.deepStrictEqual(actual, expected);
  } catch (error) {
    if (error instanceof Error) error.message = `${what}\n${error.message}`;
    throw error;
  }
}

/** Asserts that `actual` is `expected`: same data meaning, same meta, same expiry. */
export function expectRecord(actual: SessionRecord | undefined, expected: SessionRecord, what: string): void {
  assert.ok(actual, `${what}: get() returned undefined for a live session`);
  same(view(actual.data), view(expected.data), `${what}: the data differs`);
  same(JSON.parse(JSON.stringify(actual.meta)), JSON.parse(JSON.stringify(expected.meta)), `${what}: the meta differs`);
  assert.equal(actual.expiresAt, expected.expiresAt, `${what}: the expiry differs`);
}

export async function expectGone(store: SessionStore, id: string, what: string): Promise<void> {
  assert.equal(await store.get(id), undefined, `${what}: get() returned a session that must not exist`);
}

export async function settle<T>(work: () => T | Promise<T>): Promise<{ ok: true; value: T } | { ok: false }> {
  try {
    return { ok: true, value: await work() };
  } catch {
    return { ok: false };
  }
}

export const patchOf = (rec: SessionRecord, set: [string, unknown][], unset: string[] = []) => ({
  set: record(set).data,
  unset,
  meta: rec.meta,
  expiresAt: rec.expiresAt,
});

/** Writes a short-lived session and waits until it has expired. */
async function expiredSession(store: SessionStore, ctx: CaseContext): Promise<{ id: string; rec: SessionRecord }> {
  const id = newId();
  const rec = record([['doomed', true]], {}, Date.now() + ctx.ttl);
  await store.set(id, rec);
  await sleep(Math.max(0, rec.expiresAt - Date.now()) + 100);
  return { id, rec };
}

const basics: ConformanceCase[] = [
  {
    name: 'get returns the data, meta and expiry that set wrote',
    async run(store) {
      const id = newId();
      const rec = record([['userId', 42], ['name', 'Ada']], { maxAge: 3_600_000 });
      await store.set(id, rec);
      expectRecord(await store.get(id), rec, 'after set');
      expectRecord(await store.get(id), rec, 'on a second get');
    },
  },
  {
    name: 'get of an unknown id returns undefined',
    async run(store) {
      await store.set(newId(), record([['other', 1]]));
      await expectGone(store, newId(), 'an id never written');
    },
  },
  {
    name: 'set replaces the whole session',
    async run(store) {
      const id = newId();
      await store.set(id, record([['a', 1], ['b', 2]], { flash: { info: ['hi'] }, maxAge: 1000 }));
      const next = record([['c', 3]]);
      await store.set(id, next);
      expectRecord(await store.get(id), next, 'after the second set');
    },
  },
  {
    name: 'set with an expiry in the past stores nothing that get returns',
    async run(store) {
      const id = newId();
      await store.set(id, record([['a', 1]]));
      await store.set(id, record([['a', 2]], {}, Date.now() - 1000));
      await expectGone(store, id, 'a session written already expired');
    },
  },
  {
    name: 'meta with flash messages and maxAge round-trips',
    async run(store) {
      const id = newId();
      const flash = { info: ['saved', 'welcome back'], error: [{ code: 7, text: 'été' }], empty: [] };
      const rec = record([['k', 'v']], { maxAge: 30 * 24 * 3_600_000, flash });
      await store.set(id, rec);
      expectRecord(await store.get(id), rec, 'meta with flash and maxAge');
      const bare = record([['k', 'v']]);
      await store.set(id, bare);
      expectRecord(await store.get(id), bare, 'meta without flash or maxAge');
    },
  },
  {
    name: 'destroy removes the session and leaves the others',
    async run(store) {
      const [gone, kept] = [newId(), newId()];
      const keptRec = record([['kept', true]]);
      await store.set(gone, record([['gone', true]]));
      await store.set(kept, keptRec);
      await store.destroy(gone);
      await expectGone(store, gone, 'after destroy');
      expectRecord(await store.get(kept), keptRec, 'another session after destroy');
    },
  },
  {
    name: 'destroy of an unknown id does nothing and does not throw',
    async run(store) {
      const id = newId();
      await store.destroy(id);
      await store.destroy(id);
      await expectGone(store, id, 'after destroying an unknown id');
    },
  },
];

const patching: ConformanceCase[] = [
  {
    name: 'patch sets and unsets only the given keys and replaces meta and expiry',
    needs: 'patch',
    async run(store) {
      const id = newId();
      await store.set(id, record([['a', 1], ['b', 2], ['c', 3]], { flash: { info: ['x'] } }));
      const meta: SessionMeta = { createdAt: 1_700_000_000_000, maxAge: 60_000 };
      const expiresAt = Date.now() + 2 * LATER;
      await store.patch!(id, { set: record([['b', 20], ['d', 4]]).data, unset: ['c', 'never-there'], meta, expiresAt });
      expectRecord(await store.get(id), { data: record([['a', 1], ['b', 20], ['d', 4]]).data, meta, expiresAt }, 'after patch');
    },
  },
  ...[2, 50].map((n): ConformanceCase => ({
    name: `${n} concurrent patches to different keys all survive`,
    needs: 'patch',
    async run(store) {
      const id = newId();
      const rec = record([['base', true]]);
      await store.set(id, rec);
      const keys = Array.from({ length: n }, (_, i) => `key${i}`);
      await Promise.all(keys.map(async (key, i) => store.patch!(id, patchOf(rec, [[key, i]]))));
      expectRecord(await store.get(id), record([['base', true], ...keys.map((k, i): [string, unknown] => [k, i])], rec.meta, rec.expiresAt), `after ${n} concurrent patches`);
    },
  })),
  {
    name: 'patch on an unknown id does not create it',
    needs: 'patch',
    async run(store) {
      const id = newId();
      await store.patch!(id, patchOf(record([]), [['a', 1]]));
      await expectGone(store, id, 'after patching an unknown id');
    },
  },
  {
    name: 'patch on a destroyed id does not bring it back',
    needs: 'patch',
    async run(store) {
      const id = newId();
      const rec = record([['a', 1]]);
      await store.set(id, rec);
      await store.destroy(id);
      await store.patch!(id, patchOf(rec, [['b', 2]]));
      await expectGone(store, id, 'after patching a destroyed id');
    },
  },
  {
    name: 'patch on an expired session does not revive it',
    needs: 'patch',
    async run(store, ctx) {
      const { id, rec } = await expiredSession(store, ctx);
      await store.patch!(id, { ...patchOf(rec, [['b', 2]]), expiresAt: Date.now() + LATER });
      await expectGone(store, id, 'after patching an expired session with a later expiry');
    },
  },
];

const expiry: ConformanceCase[] = [
  {
    name: 'an expired session is never returned',
    async run(store, ctx) {
      const [id, live] = [newId(), newId()];
      const liveRec = record([['live', true]]);
      await store.set(live, liveRec);
      const rec = record([['a', 1]], {}, Date.now() + ctx.ttl);
      await store.set(id, rec);
      const early = await store.get(id);
      // Only a read that finished well before the expiry must see it; a slow machine may be late.
      if (Date.now() < rec.expiresAt - 20) expectRecord(early, rec, 'before its expiry');
      await sleep(Math.max(0, rec.expiresAt - Date.now()) + 100);
      await expectGone(store, id, 'after its expiry');
      await expectGone(store, id, 'on a second read after its expiry');
      expectRecord(await store.get(live), liveRec, 'a live session beside an expired one');
    },
  },
  {
    name: 'touch extends the expiry past the old one',
    async run(store, ctx) {
      const id = newId();
      const rec = record([['a', 1]], {}, Date.now() + 2 * ctx.ttl);
      await store.set(id, rec);
      const expiresAt = Date.now() + LATER;
      await store.touch(id, expiresAt);
      await sleep(Math.max(0, rec.expiresAt - Date.now()) + 100);
      expectRecord(await store.get(id), { ...rec, expiresAt }, 'a touched session past its old expiry');
    },
  },
  {
    name: 'touch on an unknown id creates nothing',
    async run(store) {
      const id = newId();
      await store.touch(id, Date.now() + LATER);
      await expectGone(store, id, 'after touching an unknown id');
    },
  },
  {
    name: 'touch on an expired session does not revive it',
    async run(store, ctx) {
      const { id } = await expiredSession(store, ctx);
      await store.touch(id, Date.now() + LATER);
      await expectGone(store, id, 'after touching an expired session');
    },
  },
  {
    name: 'reclaim removes expired sessions and keeps live ones',
    needs: 'reclaim',
    async run(store, ctx) {
      const live = newId();
      const liveRec = record([['live', true]]);
      await store.set(live, liveRec);
      const { id } = await expiredSession(store, ctx);
      await store.reclaim!();
      expectRecord(await store.get(live), liveRec, 'a live session after reclaim');
      await expectGone(store, id, 'an expired session after reclaim');
      if (ctx.countSessions) assert.equal(await ctx.countSessions(), 1, 'reclaim left expired sessions in the store (options.countSessions)');
    },
  },
];

/** Writes `entries` whole, reads them back, and checks them again after a patch when the store has one. */

/** Cases about the life of a session: write, read, patch, expire, touch, destroy, reclaim. */
export const lifecycleCases: readonly ConformanceCase[] = [...basics, ...patching, ...expiry];
