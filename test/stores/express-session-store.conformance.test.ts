import { randomBytes } from 'node:crypto';
import connectPgSimple from 'connect-pg-simple';
import { RedisStore as ConnectRedisStore } from 'connect-redis';
import session from 'express-session';
import createMemoryStore from 'memorystore';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromExpressSessionStore, type ExpressSessionCompatibleStore, type ExpressSessionStoreOptions } from '../../src/migration/express-session.js';
import type { SessionRecord, SessionStore } from '../../src/stores/session-store.interface.js';
import { defineSessionStoreTests } from '../../src/testing/index.js';
import { postgresUrl, redisUrl } from '../support/services.js';

// The conformance kit against real express-session stores from the registry, each behind the adapter.

const REDIS_URL = redisUrl();
const POSTGRES_URL = postgresUrl();
/** Everything this file writes to Redis and PostgreSQL is named after this run, and removed after it. */
const RUN = `es_adapter_${randomBytes(4).toString('hex')}`;

const MemoryStore = createMemoryStore(session);
const PgStore = connectPgSimple(session);

let redis: ReturnType<typeof createClient>;
let pool: pg.Pool;

beforeAll(async () => {
  redis = createClient({ url: REDIS_URL });
  await redis.connect();
  pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 10 });
  // A schema of its own: connect-pg-simple's table.sql names its index and key the same for every table.
  await pool.query(`CREATE SCHEMA "${RUN}"`);
});

afterAll(async () => {
  if (redis?.isOpen) {
    const keys = await redis.keys(`${RUN}:*`);
    if (keys.length > 0) await redis.del(keys);
    await redis.close();
  }
  if (pool && !pool.ended) {
    await pool.query(`DROP SCHEMA IF EXISTS "${RUN}" CASCADE`);
    await pool.end();
  }
});

let cases = 0;
/** A connect-redis store under a prefix of its own, so that one case's all() sees only its sessions. */
const connectRedis = () => new ConnectRedisStore({ client: redis, prefix: `${RUN}:case${++cases}:` });
const connectPg = () => new PgStore({ pool, schemaName: RUN, tableName: 'session', createTableIfMissing: true, pruneSessionInterval: false });

const stores: [string, () => ExpressSessionCompatibleStore, ExpressSessionStoreOptions?][] = [
  [`memorystore`, () => new MemoryStore({})],
  [`express-session's MemoryStore`, () => new session.MemoryStore()],
  [`connect-redis`, connectRedis],
  [`connect-pg-simple`, connectPg],
  [`memorystore, listByUser: 'scan'`, () => new MemoryStore({}), { listByUser: 'scan' }],
  [`express-session's MemoryStore, listByUser: 'scan'`, () => new session.MemoryStore(), { listByUser: 'scan' }],
  [`connect-redis, listByUser: 'scan'`, connectRedis, { listByUser: 'scan' }],
];

for (const [name, make, options] of stores) {
  defineSessionStoreTests({ describe, it }, () => fromExpressSessionStore(make(), options), { title: `fromExpressSessionStore(${name}) conformance` });
}

const LATER = 10 * 60_000;
const record = (data: Record<string, unknown>, expiresAt = Date.now() + LATER): SessionRecord => ({
  data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, JSON.stringify(value)])),
  meta: { createdAt: Date.now() },
  expiresAt,
});
const patchOf = (set: Record<string, unknown>, expiresAt = Date.now() + LATER) => ({
  set: Object.fromEntries(Object.entries(set).map(([key, value]) => [key, JSON.stringify(value)])),
  unset: [],
  flash: { set: {}, unset: [] },
  expiresAt,
});
const id = () => randomBytes(32).toString('base64url');

/** An express-session store whose first set() after `arm()` waits until `release()`: a slow write, to place another call between a patch's read and write. */
function withHeldSet(store: ExpressSessionCompatibleStore) {
  let armed = false;
  let reached = () => {};
  let release = () => {};
  const reachedSet = new Promise<void>((resolve) => (reached = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  const wrapper: ExpressSessionCompatibleStore = {
    get: (sid, callback) => store.get(sid, callback),
    destroy: (sid, callback) => store.destroy(sid, callback),
    set: (sid, value, callback) => {
      if (!armed) return store.set(sid, value, callback);
      armed = false;
      reached();
      void gate.then(() => store.set(sid, value, callback));
      return undefined;
    },
  };
  return { wrapper, arm: () => void (armed = true), reachedSet, release: () => release() };
}

describe('fromExpressSessionStore over connect-redis and connect-pg-simple: the store TTL, closeStore, and what one process can and cannot promise', () => {
  it("sets the key's TTL to the record's expiry, and moves it with patch() and touch()", async () => {
    const prefix = `${RUN}:ttl:`;
    const store = fromExpressSessionStore(new ConnectRedisStore({ client: redis, prefix }));
    const sid = id();
    const ttlLeft = async () => (await redis.pTTL(prefix + sid)) / 1000;
    await store.set(sid, record({ a: 1 }, Date.now() + 3_600_000));
    expect(await ttlLeft()).toBeGreaterThan(3598);
    expect(await ttlLeft()).toBeLessThanOrEqual(3601);
    await store.patch(sid, patchOf({ b: 2 }, Date.now() + 7_200_000));
    expect(await ttlLeft()).toBeGreaterThan(7198);
    await store.touch(sid, Date.now() + 60_000);
    expect(await ttlLeft()).toBeGreaterThan(58);
    expect(await ttlLeft()).toBeLessThanOrEqual(61);
    expect(JSON.parse(JSON.stringify((await store.get(sid))?.data))).toEqual({ a: '1', b: '2' });
  });

  it("connect-pg-simple's expire column follows the record's expiry", async () => {
    const store = fromExpressSessionStore(connectPg());
    const sid = id();
    const expiresAt = Date.now() + 3_600_000;
    await store.set(sid, record({ a: 1 }, expiresAt));
    const { rows } = await pool.query<{ expire: number }>(`SELECT extract(epoch from expire)::float8 AS expire FROM "${RUN}"."session" WHERE sid = $1`, [sid]);
    expect(rows[0].expire).toBe(Math.ceil(expiresAt / 1000));
  });

  it("closeStore: true ends the pool connect-pg-simple opened itself; without it, the store is left open", async () => {
    const connections = async (name: string) =>
      Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1', [name])).rows[0].n);
    const owned = (name: string) => new PgStore({ conObject: { connectionString: POSTGRES_URL, application_name: name }, schemaName: RUN, tableName: 'session', pruneSessionInterval: false });
    const [closing, kept] = [`${RUN}_closing`, `${RUN}_kept`];
    const keptStore = owned(kept);
    const stores = [fromExpressSessionStore(owned(closing), { closeStore: true }), fromExpressSessionStore(keptStore)];
    for (const store of stores) await store.set(id(), record({ a: 1 }));
    expect(await connections(closing)).toBe(1);
    expect(await connections(kept)).toBe(1);
    for (const store of stores) await store.close?.();
    for (let i = 0; i < 50 && (await connections(closing)) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await connections(closing)).toBe(0);
    expect(await connections(kept)).toBe(1);
    await (keptStore.close() as unknown as Promise<void>); // typed void by @types/connect-pg-simple, yet async: it ends its own pool
  });

  it('in one process, a destroy() that arrives between a patch\'s read and its write still wins', async () => {
    const { wrapper, arm, reachedSet, release } = withHeldSet(new ConnectRedisStore({ client: redis, prefix: `${RUN}:one:` }));
    const store = fromExpressSessionStore(wrapper);
    const sid = id();
    await store.set(sid, record({ user: 'ada' }));
    arm();
    const late = store.patch(sid, patchOf({ note: 'slow request' })); // read, then a held write
    await reachedSet;
    const logout = store.destroy(sid); // queued behind the patch's write
    release();
    await Promise.all([late, logout]);
    expect(await store.get(sid)).toBeUndefined();
    expect(await redis.exists(`${RUN}:one:${sid}`)).toBe(0);
  });

  it('across processes, a destroy() between another process\'s read and write is undone: the documented window', async () => {
    const prefix = `${RUN}:two:`;
    const { wrapper, arm, reachedSet, release } = withHeldSet(new ConnectRedisStore({ client: redis, prefix }));
    const first: SessionStore = fromExpressSessionStore(wrapper);
    const second: SessionStore = fromExpressSessionStore(new ConnectRedisStore({ client: redis, prefix }));
    const sid = id();
    await first.set(sid, record({ user: 'ada' }));
    arm();
    const late = first.patch(sid, patchOf({ note: 'slow request' }));
    await reachedSet;
    await second.destroy(sid); // another instance signs out, between the first's read and write
    release();
    await late;
    // Back for every process; the one that destroyed it refuses that id for a minute (its tombstone).
    const third: SessionStore = fromExpressSessionStore(new ConnectRedisStore({ client: redis, prefix }));
    expect((await third.get(sid))?.data.note).toBe('"slow request"');
    expect(await second.get(sid)).toBeUndefined();
    await third.destroy(sid);
  });
});
