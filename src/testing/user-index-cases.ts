import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionRecord, SessionStore, SessionUser, UserSessionEntry } from '../stores/session-store.interface.js';
import type { Skipped } from './case-runner.js';
import { expectRecord, LATER, newId, patchOf, record } from './record-checks.js';
import type { CaseContext, ConformanceCase } from './store-cases.js';

const NO_CAPABILITY: Skipped = { skipped: 'the store has no listByUser() (an optional capability)' };

/** A tie as the engine writes it. */
function tie(id: string, more: Partial<SessionUser> = {}): SessionUser {
  return { id, lastSeenAt: Date.now() - 500, userAgent: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0', ip: '203.0.113.7', ...more };
}

const tied = (user: string, entries: [string, unknown][] = [['userId', user]], more: Partial<SessionRecord['meta']> = {}, expiresAt?: number): SessionRecord =>
  record(entries, { user: tie(user), ...more }, expiresAt);

async function listed(store: SessionStore, user: string): Promise<UserSessionEntry[]> {
  const entries = await store.listByUser!(user);
  assert.ok(Array.isArray(entries), `listByUser('${user}') returned ${typeof entries}, not an array`);
  return entries;
}

/** The ids listed for `user`, sorted, checked to be live and tied to `user`. */
async function idsOf(store: SessionStore, user: string, what: string): Promise<string[]> {
  const entries = await listed(store, user);
  const now = Date.now();
  for (const entry of entries) {
    assert.equal(entry.meta?.user?.id, user, `${what}: listByUser('${user}') returned a session tied to ${JSON.stringify(entry.meta?.user?.id)}`);
    assert.ok(entry.expiresAt > now, `${what}: listByUser('${user}') returned an expired session`);
  }
  const ids = entries.map((entry) => entry.id).sort();
  assert.equal(new Set(ids).size, ids.length, `${what}: listByUser('${user}') returned a session twice`);
  return ids;
}

function sameIds(actual: string[], expected: string[], what: string): void {
  assert.deepEqual(actual, [...expected].sort(), `${what}: the listed sessions differ`);
}

/** A case that needs `listByUser`: skipped on a store without it. */
function capability(name: string, run: (store: SessionStore, ctx: CaseContext) => Promise<void>): ConformanceCase {
  return {
    name,
    async run(store, ctx) {
      if (typeof store.listByUser !== 'function') return NO_CAPABILITY;
      await run(store, ctx);
    },
  };
}

/** Cases of the optional user index (`listByUser`): what `SessionService.sessionsOf()` and `endSessionsOf()` rely on. */
export const userIndexCases: readonly ConformanceCase[] = [
  capability('listByUser lists the live sessions tied to a user, with their meta, and no others', async (store) => {
    const [a1, a2, named, b1, untied] = [newId(), newId(), newId(), newId(), newId()];
    const recs = new Map<string, SessionRecord>([
      [a1, tied('ada')],
      [a2, tied('ada', [['cart', [1, 2]]], { maxAge: 86_400_000, flash: { info: ['hi'] } })],
      [named, tied('ada', [], { session: 'prefs' })],
      [b1, tied('bob')],
      [untied, record([['userId', 'ada']])],
    ]);
    for (const [id, rec] of recs) await store.set(id, rec);
    const entries = await listed(store, 'ada');
    sameIds(entries.map((e) => e.id).sort(), [a1, a2, named], "listByUser('ada')");
    for (const entry of entries) {
      const rec = recs.get(entry.id)!;
      // A listing needs no flash messages: a store may leave them out.
      const { flash: _flash, ...meta } = rec.meta;
      const { flash: _listed, ...listed } = entry.meta;
      expectRecord({ data: rec.data, meta: listed, expiresAt: entry.expiresAt }, { ...rec, meta }, `the listed meta and expiry of a session of ada`);
    }
    sameIds(await idsOf(store, 'bob', 'bob'), [b1], "listByUser('bob')");
    sameIds(await idsOf(store, 'nobody', 'a user with no session'), [], "listByUser('nobody')");
  }),
  capability('user ids are exact strings: similar, numeric-looking and unusual ids are kept apart', async (store) => {
    const users = ['42', '042', 'a', 'a:b', 'A', 'späť \u0000 \ud83d 🍪', '*', '{x}'];
    const ids = users.map(() => newId());
    await Promise.all(users.map(async (user, i) => store.set(ids[i], tied(user))));
    for (const [i, user] of users.entries()) sameIds(await idsOf(store, user, `user ${JSON.stringify(user)}`), [ids[i]], `listByUser(${JSON.stringify(user)})`);
    const odd = users[5];
    const got = await store.get(ids[5]);
    assert.equal(got?.meta.user?.id, odd, 'get() returns a user id with a NUL character and a lone surrogate as it was');
  }),
  capability('a patch ties, re-ties and unties a session, keeping its data', async (store) => {
    const id = newId();
    const rec = record([['visits', 3]]);
    await store.set(id, rec);
    sameIds(await idsOf(store, 'ada', 'before any tie'), [], 'an untied session');
    await store.patch(id, patchOf(rec, [], [], { user: tie('ada') }));
    sameIds(await idsOf(store, 'ada', 'tied by a patch'), [id], 'after a patch tied it to ada');
    await store.patch(id, patchOf(rec, [['more', 1]], [], { user: tie('bob', { ip: '198.51.100.1' }) }));
    sameIds(await idsOf(store, 'ada', 're-tied by a patch'), [], 'ada after a patch tied the session to bob');
    const [entry] = await listed(store, 'bob');
    assert.equal(entry?.id, id, 'bob lists the session a patch tied to him');
    assert.deepEqual(JSON.parse(JSON.stringify(entry.meta.user)), tie('bob', { ip: '198.51.100.1', lastSeenAt: entry.meta.user!.lastSeenAt }), 'the tie is replaced whole');
    await store.patch(id, patchOf(rec, [], [], { user: null }));
    sameIds(await idsOf(store, 'bob', 'untied by a patch'), [], 'bob after a patch untied the session');
    const after = await store.get(id);
    expectRecord(after, record([['visits', 3], ['more', 1]], { createdAt: rec.meta.createdAt }, rec.expiresAt), 'the session after tie, re-tie and untie');
  }),
  capability('patches and touches that leave the user out keep the tie and its details', async (store) => {
    const id = newId();
    const rec = tied('ada');
    await store.set(id, rec);
    const expiresAt = Date.now() + 2 * LATER;
    await store.patch(id, { ...patchOf(rec, [['b', 2]], ['userId'], { maxAge: 1000, flash: { set: { info: ['x'] }, unset: [] } }), expiresAt });
    await store.touch(id, expiresAt + 1000);
    const want = record([['b', 2]], { ...rec.meta, maxAge: 1000, flash: { info: ['x'] } }, expiresAt + 1000);
    expectRecord(await store.get(id), want, 'after a patch and a touch without a user');
    const [entry] = await listed(store, 'ada');
    assert.equal(entry?.id, id, 'still listed for its user');
    assert.equal(entry.expiresAt, expiresAt + 1000, 'the listed expiry follows the touch');
  }),
  capability('destroying every listed session ends them all (sign out everywhere)', async (store) => {
    const mine = [newId(), newId(), newId()];
    const other = newId();
    for (const id of mine) await store.set(id, tied('ada'));
    const otherRec = tied('bob');
    await store.set(other, otherRec);
    await Promise.all((await listed(store, 'ada')).map(async (entry) => store.destroy(entry.id)));
    sameIds(await idsOf(store, 'ada', 'after ending every session'), [], 'ada after every session ended');
    for (const id of mine) assert.equal(await store.get(id), undefined, 'an ended session is gone');
    expectRecord(await store.get(other), otherRec, "another user's session");
    sameIds(await idsOf(store, 'bob', 'another user'), [other], "another user's list");
  }),
  capability('destroying all listed sessions but one leaves that one (sign out everywhere else)', async (store, ctx) => {
    const ids = [newId(), newId(), newId(), newId()];
    for (const id of ids) await store.set(id, tied('ada'));
    const kept = ids[2];
    await Promise.all((await listed(store, 'ada')).filter((e) => e.id !== kept).map(async (e) => store.destroy(e.id)));
    sameIds(await idsOf(store, 'ada', 'after ending the others'), [kept], 'ada after ending every session but one');
    assert.ok(await store.get(kept), 'the kept session is still there');
    if (ctx.countIndexed) {
      await listed(store, 'ada');
      assert.equal(await ctx.countIndexed(), 1, 'the user index still holds ended sessions after a listing (options.countIndexed)');
    }
  }),
  capability('an expired session leaves its user\'s list, and the index lets go of it', async (store, ctx) => {
    const live = newId();
    await store.set(live, tied('ada'));
    const doomed = newId();
    const rec = tied('ada', [['doomed', true]], {}, Date.now() + ctx.ttl);
    await store.set(doomed, rec);
    await sleep(Math.max(0, rec.expiresAt - Date.now()) + 100);
    sameIds(await idsOf(store, 'ada', 'after one session expired'), [live], 'ada after one of her sessions expired');
    await store.reclaim?.();
    sameIds(await idsOf(store, 'ada', 'after reclaim'), [live], 'ada after reclaim');
    if (ctx.countIndexed) assert.equal(await ctx.countIndexed(), 1, 'the user index still holds an expired session (options.countIndexed)');
  }),
  capability("an active user's expired sessions leave the index without any listing (by the user's next writes, or reclaim)", async (store, ctx) => {
    const live = newId();
    const rec = tied('ada');
    await store.set(live, rec);
    const expiresAt = Date.now() + ctx.ttl;
    for (let i = 0; i < 3; i++) await store.set(newId(), tied('ada', [['doomed', true]], {}, expiresAt));
    await sleep(Math.max(0, expiresAt - Date.now()) + 100);
    // The user stays active and is never listed: their requests write the live session, a sign-in adds one.
    await store.patch(live, patchOf(rec, [['seen', 1]], [], { user: tie('ada') }));
    await store.touch(live, Date.now() + LATER);
    const signIn = newId();
    await store.set(signIn, tied('ada'));
    await store.reclaim?.();
    if (ctx.countIndexed) assert.equal(await ctx.countIndexed(), 2, 'the user index still holds expired sessions of a user who stays active, never listed (options.countIndexed)');
    sameIds(await idsOf(store, 'ada', 'after three sessions expired'), [live, signIn], 'ada after three of her sessions expired');
  }),
  capability('regenerate moves the tie: the new id is listed, the old one is not', async (store) => {
    const old = newId();
    const rec = tied('ada', [['cart', ['x']]]);
    await store.set(old, rec);
    // What the engine does on regenerate(): the old id destroyed, the same session written under a new id.
    const renewed = newId();
    await store.destroy(old);
    await store.set(renewed, { ...rec, meta: { ...rec.meta, createdAt: Date.now() } });
    sameIds(await idsOf(store, 'ada', 'after regenerate'), [renewed], 'ada after regenerate');
  }),
  capability('set over a session tied to another user moves it, and set without a user unties it', async (store) => {
    const id = newId();
    await store.set(id, tied('ada'));
    await store.set(id, tied('bob'));
    sameIds(await idsOf(store, 'ada', 'the first user'), [], 'ada after the session was written for bob');
    sameIds(await idsOf(store, 'bob', 'the second user'), [id], 'bob after the session was written for him');
    await store.set(id, record([['a', 1]]));
    sameIds(await idsOf(store, 'bob', 'after an untied set'), [], 'bob after the session was written untied');
  }),
  capability('concurrent logins of one user are all listed, concurrent logouts all gone', async (store) => {
    const before = Array.from({ length: 10 }, () => newId());
    await Promise.all(before.map(async (id) => store.set(id, tied('ada'))));
    const logins = Array.from({ length: 30 }, () => newId());
    await Promise.all([...logins.map(async (id) => store.set(id, tied('ada'))), ...before.map(async (id) => store.destroy(id))]);
    sameIds(await idsOf(store, 'ada', 'after concurrent logins and logouts'), logins, 'ada after 30 concurrent logins and 10 concurrent logouts');
  }),
];
