import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionMeta, SessionRecord, SessionStore } from '../stores/session-store.interface.js';
import type { Skipped } from './case-runner.js';
import { dataOf, expectRecord, LATER, newId, patchOf, record } from './record-checks.js';

/** What a case gets besides its store. */
export interface CaseContext {
  ttl: number;
  maxValueBytes: number;
  countSessions?: () => Promise<number>;
  countIndexed?: () => Promise<number>;
  writtenOutside?: () => Promise<string[]>;
}

/** One promise a server-side store makes, checked on a fresh store. */
export interface ConformanceCase {
  name: string;
  run(store: SessionStore, ctx: CaseContext): Promise<void | Skipped>;
}

/** How far before a session's expiry a read must have returned for its answer to count. */
const MARGIN_MS = 25;

export async function expectGone(store: SessionStore, id: string, what: string): Promise<void> {
  assert.equal(await store.get(id), undefined, `${what}: get() returned a session that must not exist`);
}

/** Waits until `expiresAt` has passed, with a margin for a back-end whose clock runs a little behind. */
async function outlive(expiresAt: number): Promise<void> {
  await sleep(Math.max(0, expiresAt - Date.now()) + 100);
}

/** Writes a short-lived session and waits until it has expired. */
async function expiredSession(store: SessionStore, ctx: CaseContext): Promise<{ id: string; rec: SessionRecord }> {
  const id = newId();
  const rec = record([['doomed', true]], {}, Date.now() + ctx.ttl);
  await store.set(id, rec);
  await outlive(rec.expiresAt);
  return { id, rec };
}

/**
 * Writes a session that expires soon and runs `act` on it while it is surely live: when the write and
 * `act` return too close to the expiry to tell, it starts again with a session that lives twice as
 * long. A slow machine makes the case slower, never skipped.
 */
async function whileLive(store: SessionStore, ctx: CaseContext, act: (id: string, rec: SessionRecord) => Promise<void>): Promise<{ id: string; rec: SessionRecord }> {
  const limit = Math.max(16 * ctx.ttl, 5000);
  for (let ttl = ctx.ttl; ; ttl *= 2) {
    const id = newId();
    const rec = record([['a', 1]], {}, Date.now() + ttl);
    await store.set(id, rec);
    await act(id, rec);
    if (Date.now() < rec.expiresAt - MARGIN_MS) return { id, rec };
    await store.destroy(id);
    if (ttl >= limit) throw new Error(`writing and reading one session took more than ${ttl} ms: too slow to check expiry (raise options.ttl)`);
  }
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
    name: 'set replaces the whole session, meta included',
    async run(store) {
      const id = newId();
      await store.set(id, record([['a', 1], ['b', 2]], { flash: { info: ['hi'] }, maxAge: 1000, session: 'prefs' }));
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
    name: 'the session name in meta round-trips, and stays absent when absent',
    async run(store) {
      const [named, unnamed] = [newId(), newId()];
      const rec = record([['k', 'v']], { session: 'prefs', flash: { info: ['x'] } });
      await store.set(named, rec);
      const bare = record([['k', 'v']]);
      await store.set(unnamed, bare);
      expectRecord(await store.get(named), rec, 'a named session');
      expectRecord(await store.get(unnamed), bare, 'the default session (no name)');
      const odd = record([], { session: 'späť \u0000 \ud83d 🍪' });
      await store.set(named, odd);
      expectRecord(await store.get(named), odd, 'a session name with a NUL character and a lone surrogate');
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

const flashOf = (entries: [string, unknown[]][]): Record<string, unknown[]> => Object.fromEntries(entries);

const patching: ConformanceCase[] = [
  {
    name: 'patch sets and unsets only the given data keys, moves the expiry and leaves the meta as stored',
    async run(store) {
      const id = newId();
      const meta: SessionMeta = { createdAt: 1_700_000_000_000, maxAge: 60_000, flash: { info: ['x'] }, session: 'prefs' };
      await store.set(id, record([['a', 1], ['b', 2], ['c', 3]], meta));
      const expiresAt = Date.now() + 2 * LATER;
      await store.patch(id, { set: dataOf([['b', 20], ['d', 4]]), unset: ['c', 'never-there'], flash: { set: {}, unset: [] }, expiresAt });
      expectRecord(await store.get(id), { data: dataOf([['a', 1], ['b', 20], ['d', 4]]), meta, expiresAt }, 'after patch');
    },
  },
  {
    name: 'patch replaces and removes flash keys one by one and leaves the other flash keys',
    async run(store) {
      const id = newId();
      const rec = record([['a', 1]], { flash: flashOf([['info', ['one']], ['error', ['bad']], ['kept', ['stay', { n: 1 }]]]) });
      await store.set(id, rec);
      await store.patch(id, patchOf(rec, [], [], { flash: { set: flashOf([['info', ['one', 'two']], ['new', [{ deep: [1, null] }]]]), unset: ['error', 'never-there'] } }));
      const want = record([['a', 1]], { createdAt: rec.meta.createdAt, flash: flashOf([['info', ['one', 'two']], ['kept', ['stay', { n: 1 }]], ['new', [{ deep: [1, null] }]]]) }, rec.expiresAt);
      expectRecord(await store.get(id), want, 'after a flash patch');
      await store.patch(id, patchOf(rec, [], [], { flash: { set: {}, unset: ['info', 'kept', 'new'] } }));
      expectRecord(await store.get(id), record([['a', 1]], { createdAt: rec.meta.createdAt }, rec.expiresAt), 'after removing every flash key');
      await store.patch(id, patchOf(rec, [], [], { flash: { set: flashOf([['again', ['back']]]), unset: [] } }));
      expectRecord(await store.get(id), record([['a', 1]], { createdAt: rec.meta.createdAt, flash: flashOf([['again', ['back']]]) }, rec.expiresAt), 'after adding a flash key to a session with none');
    },
  },
  {
    name: 'patch sets maxAge, null removes it, and a patch without it leaves it',
    async run(store) {
      const id = newId();
      const rec = record([['a', 1]], { flash: { info: ['x'] } });
      await store.set(id, rec);
      const withMaxAge = (maxAge?: number): SessionRecord => ({ ...rec, meta: maxAge === undefined ? rec.meta : { ...rec.meta, maxAge } });
      await store.patch(id, patchOf(rec, [], [], { maxAge: 86_400_000 }));
      expectRecord(await store.get(id), withMaxAge(86_400_000), 'after a patch that sets maxAge');
      await store.patch(id, patchOf(rec, [['b', 2]]));
      expectRecord(await store.get(id), { ...withMaxAge(86_400_000), data: dataOf([['a', 1], ['b', 2]]) }, 'after a patch without maxAge');
      await store.patch(id, patchOf(rec, [], ['b'], { maxAge: null }));
      expectRecord(await store.get(id), withMaxAge(), 'after a patch with maxAge: null');
    },
  },
  {
    name: 'patch never changes createdAt or the session name',
    async run(store) {
      const id = newId();
      const rec = record([['a', 1]], { createdAt: 1_600_000_000_000, session: 'prefs' });
      await store.set(id, rec);
      await store.patch(id, patchOf(rec, [['b', 2]], ['a'], { maxAge: 1000, flash: { set: { info: ['x'] }, unset: [] } }));
      expectRecord(await store.get(id), record([['b', 2]], { ...rec.meta, maxAge: 1000, flash: { info: ['x'] } }, rec.expiresAt), 'after a patch');
    },
  },
  ...[2, 50].map(
    (n): ConformanceCase => ({
      name: `${n} concurrent patches to different keys all survive`,
      async run(store) {
        const id = newId();
        const rec = record([['base', true]]);
        await store.set(id, rec);
        const keys = Array.from({ length: n }, (_, i) => `key${i}`);
        await Promise.all(keys.map(async (key, i) => store.patch(id, patchOf(rec, [[key, i]]))));
        expectRecord(await store.get(id), record([['base', true], ...keys.map((k, i): [string, unknown] => [k, i])], rec.meta, rec.expiresAt), `after ${n} concurrent patches`);
      },
    }),
  ),
  {
    name: 'concurrent patches of flash keys, data keys and maxAge all survive',
    async run(store) {
      const id = newId();
      const n = 8;
      const old = Array.from({ length: n }, (_, i): [string, unknown[]] => [`old${i}`, [i]]);
      const rec = record([['base', true]], { flash: flashOf([...old, ['kept', ['k']]]) });
      await store.set(id, rec);
      const patches = [
        patchOf(rec, [], [], { maxAge: 7_200_000 }),
        ...Array.from({ length: n }, (_, i) => patchOf(rec, [[`data${i}`, i]])),
        ...Array.from({ length: n }, (_, i) => patchOf(rec, [], [], { flash: { set: { [`flash${i}`]: [`m${i}`] }, unset: [] } })),
        ...Array.from({ length: n }, (_, i) => patchOf(rec, [], [], { flash: { set: {}, unset: [`old${i}`] } })),
      ];
      await Promise.all(patches.map(async (patch) => store.patch(id, patch)));
      const want = record(
        [['base', true], ...Array.from({ length: n }, (_, i): [string, unknown] => [`data${i}`, i])],
        { createdAt: rec.meta.createdAt, maxAge: 7_200_000, flash: flashOf([['kept', ['k']], ...Array.from({ length: n }, (_, i): [string, unknown[]] => [`flash${i}`, [`m${i}`]])]) },
        rec.expiresAt,
      );
      expectRecord(await store.get(id), want, 'after concurrent patches of flash, data and maxAge');
    },
  },
  {
    name: 'patch on an unknown id does not create it',
    async run(store) {
      const id = newId();
      await store.patch(id, patchOf(record([]), [['a', 1]], [], { maxAge: 1000, flash: { set: { info: ['x'] }, unset: [] } }));
      await expectGone(store, id, 'after patching an unknown id');
    },
  },
  {
    name: 'patch on a destroyed id does not bring it back',
    async run(store) {
      const id = newId();
      const rec = record([['a', 1]]);
      await store.set(id, rec);
      await store.destroy(id);
      await store.patch(id, patchOf(rec, [['b', 2]], [], { flash: { set: { info: ['x'] }, unset: [] } }));
      await expectGone(store, id, 'after patching a destroyed id');
    },
  },
  {
    name: 'patch on an expired session does not revive it',
    async run(store, ctx) {
      const { id, rec } = await expiredSession(store, ctx);
      await store.patch(id, { ...patchOf(rec, [['b', 2]], [], { maxAge: 1000 }), expiresAt: Date.now() + LATER });
      await expectGone(store, id, 'after patching an expired session with a later expiry');
    },
  },
];

const expiry: ConformanceCase[] = [
  {
    name: 'a session is returned until its expiry and never after',
    async run(store, ctx) {
      const live = newId();
      const liveRec = record([['live', true]]);
      await store.set(live, liveRec);
      const { id, rec } = await whileLive(store, ctx, async (id, rec) => {
        const early = await store.get(id);
        if (Date.now() < rec.expiresAt - MARGIN_MS) expectRecord(early, rec, 'before its expiry');
      });
      await outlive(rec.expiresAt);
      await expectGone(store, id, 'after its expiry');
      await expectGone(store, id, 'on a second read after its expiry');
      expectRecord(await store.get(live), liveRec, 'a live session beside an expired one');
    },
  },
  ...(
    [
      ['touch', (store, id, _rec, expiresAt) => store.touch(id, expiresAt)],
      ['patch', (store, id, rec, expiresAt) => store.patch(id, { ...patchOf(rec, []), expiresAt })],
    ] as const satisfies readonly [string, (store: SessionStore, id: string, rec: SessionRecord, expiresAt: number) => unknown][]
  ).map(
    ([method, extend]): ConformanceCase => ({
      name: `${method} extends the expiry: the session lives past its old one`,
      async run(store, ctx) {
        const expiresAt = Date.now() + LATER;
        const { id, rec } = await whileLive(store, ctx, async (id, rec) => void (await extend(store, id, rec, expiresAt)));
        expectRecord(await store.get(id), { ...rec, expiresAt }, `right after ${method}`);
        await outlive(rec.expiresAt);
        expectRecord(await store.get(id), { ...rec, expiresAt }, `a session extended by ${method}, past its old expiry`);
      },
    }),
  ),
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
    async run(store, ctx) {
      if (typeof store.reclaim !== 'function') return { skipped: 'the store has no reclaim()' };
      const live = newId();
      const liveRec = record([['live', true]]);
      await store.set(live, liveRec);
      const { id } = await expiredSession(store, ctx);
      await store.reclaim();
      expectRecord(await store.get(live), liveRec, 'a live session after reclaim');
      await expectGone(store, id, 'an expired session after reclaim');
      if (ctx.countSessions) assert.equal(await ctx.countSessions(), 1, 'reclaim left expired sessions in the store (options.countSessions)');
    },
  },
];

/** Cases about the life of a session: write, read, patch, expire, touch, destroy, reclaim. */
export const lifecycleCases: readonly ConformanceCase[] = [...basics, ...patching, ...expiry];
