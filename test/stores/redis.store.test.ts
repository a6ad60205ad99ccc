import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RESP_TYPES } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionConfigError, SessionStoreError } from '../../src/session/session.errors.js';
import type { SessionPatch, SessionRecord } from '../../src/stores/session-store.interface.js';
import { RedisStore, type RedisStoreClient } from '../../src/stores/redis.store.js';
import { defineSessionStoreTests } from '../../src/testing/index.js';
import { nodeRedisClient, nodeRedisVersions, type NodeRedisHandle } from '../support/redis-clients.js';
import { indexSize } from '../support/redis-server.js';
import { redisUrl } from '../support/services.js';

const URL = redisUrl();
const runPrefix = `test:redis-store:${randomUUID()}:`; // unique per run: parallel files and reruns never share keys
/** An ioredis client that reads what the stores wrote, whichever client they write with. */
let admin: Redis;

const hour = () => Date.now() + 3_600_000;
const record = (data: Record<string, string>, expiresAt = hour()): SessionRecord => ({ data, meta: { createdAt: Date.now() }, expiresAt });
const patch = (set: Record<string, string>, expiresAt = hour()): SessionPatch => ({ set, unset: [], flash: { set: {}, unset: [] }, expiresAt });
const tied = (user: string, expiresAt = hour()): SessionRecord => ({ data: { a: '1' }, meta: { createdAt: Date.now(), user: { id: user, lastSeenAt: Date.now() } }, expiresAt });

beforeAll(async () => {
  admin = new Redis(URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  try {
    await admin.connect();
    await admin.ping();
  } catch (err) {
    admin.disconnect();
    throw new Error(`these tests need Redis at ${URL}, started by test/support/global-setup.ts or given as REDIS_URL (${(err as Error).message})`, { cause: err });
  }
});

afterAll(async () => {
  if (admin?.status !== 'ready') return;
  const keys = await admin.keys(`${runPrefix}*`);
  if (keys.length) await admin.del(...keys);
  await admin.quit();
});

/**
 * The clients the store takes, each running the same tests: ioredis (as before: the inspecting client
 * is the store's), and node-redis 6 and 5 set up as docs/stores/redis.md says.
 */
const clients: { name: string; slug: string; open(): Promise<NodeRedisHandle> }[] = [
  { name: 'ioredis', slug: 'ioredis', open: async () => ({ client: admin, ready: () => admin.status === 'ready', ping: () => admin.ping(), close: async () => undefined }) },
  ...nodeRedisVersions.map((version) => ({ name: version.name, slug: version.name.replace(/\W+/g, '-'), open: () => nodeRedisClient(version, URL) })),
];

describe.each(clients)('RedisStore with $name', ({ slug, open }) => {
  const prefix = `${runPrefix}${slug}:`;
  let holder: NodeRedisHandle;
  let client: RedisStoreClient;
  let store: RedisStore;

  beforeAll(async () => {
    holder = await open();
    client = holder.client;
    store = new RedisStore({ client, prefix });
  });

  afterAll(() => holder?.close());

  // Each case gets a store with a prefix of its own, so counting its keys counts only its sessions.
  const casePrefixes = new WeakMap<RedisStore, string>();
  let cases = 0;
  defineSessionStoreTests(
    { describe, it },
    () => {
      const casePrefix = `${prefix}case${++cases}:`;
      const caseStore = new RedisStore({ client, prefix: casePrefix });
      casePrefixes.set(caseStore, casePrefix);
      return caseStore;
    },
    {
      title: 'RedisStore conformance',
      // Sessions only: the users' sets live under `<prefix>user:`.
      countSessions: async (s) => (await admin.keys(`${casePrefixes.get(s)}*`)).filter((key) => !key.startsWith(`${casePrefixes.get(s)}user:`)).length,
      countIndexed: async (s) => {
        const indexes = await admin.keys(`${casePrefixes.get(s)}user:*`);
        return (await Promise.all(indexes.map(async (key) => indexSize(admin, key)))).reduce((a, b) => a + b, 0);
      },
    },
  );

  describe('RedisStore', () => {
    it('round-trips data, meta and expiry, keeping each value as the exact text it was given', async () => {
      const data = {
        plain: '1',
        ordered: '{"b":1,"a":2}',
        big: '12345678901234567890',
        nul: JSON.stringify('a\u0000b'),
        ['__proto__']: '"proto"', // computed: an own key, not the prototype
        constructor: '"ctor"',
        m: '"looks like the old meta field"',
        e: '"looks like the expiry field"',
        c: '"looks like the createdAt field"',
        a: '"looks like the maxAge field"',
        n: '"looks like the session name field"',
        'd:x': '"looks like a data field"',
        'f:x': '"looks like a flash field"',
        'a\u0000b': '"NUL"',
        'x\ud83dy': '"lone surrogate"',
        '': '"empty key"',
        'ключ 🔑': '"unicode"',
      };
      const input: SessionRecord = { data: Object.fromEntries(Object.entries(data)), meta: { createdAt: 1, maxAge: 5000, flash: { info: ['hi'], 'f:\ud800': ['x\u0000'] }, session: 'prefs' }, expiresAt: hour() };
      await store.set('round-trip', input);
      const output = await store.get('round-trip');
      expect(output).toEqual(input);
      expect(Object.getPrototypeOf(output!.data)).toBe(Object.prototype);
      expect(Object.keys(output!.data).sort()).toEqual(Object.keys(input.data).sort());
    });

    it('returns undefined for an unknown id', async () => {
      expect(await store.get('never-set')).toBeUndefined();
    });

    it('keeps the expiry in Redis: the key has a TTL ending at expiresAt', async () => {
      const expiresAt = Date.now() + 60_000;
      await store.set('ttl', record({ a: '1' }, expiresAt));
      const pttl = await admin.pttl(`${prefix}ttl`);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
      expect(await admin.pexpiretime(`${prefix}ttl`)).toBe(expiresAt);
    });

    it('never returns an expired session, and does not keep one written already expired', async () => {
      await store.set('expired', record({ a: '1' }, Date.now() - 1000));
      expect(await store.get('expired')).toBeUndefined();
      expect(await admin.exists(`${prefix}expired`)).toBe(0);
    });

    it('hides a session whose stored expiry has passed even if the key is still there', async () => {
      await admin.hset(`${prefix}stale`, { c: '1', e: String(Date.now() - 1000), 'd:a': '1' });
      expect(await store.get('stale')).toBeUndefined();
    });

    it('replaces the whole session on set', async () => {
      await store.set('replace', record({ a: '1', b: '2' }));
      await store.set('replace', record({ c: '3' }));
      expect((await store.get('replace'))?.data).toEqual({ c: '3' });
    });

    it('keeps each meta field and each flash key in a field of its own, keys encoded where UTF-8 cannot carry them', async () => {
      const expiresAt = hour();
      await store.set('layout', { data: { plain: '1', 'a\u0000b': '2' }, meta: { createdAt: 7, maxAge: 9, session: 'prefs', flash: { info: ['hi'], 'x\ud83d': ['\ud800'] } }, expiresAt });
      expect(await admin.hgetall(`${prefix}layout`)).toEqual({
        'd:plain': '1',
        'd:\u0001"a\\u0000b"': '2',
        c: '7',
        a: '9',
        n: '"prefs"',
        'f:info': '["hi"]',
        'f:\u0001"x\\ud83d"': '["\\ud800"]',
        e: String(expiresAt),
      });
    });

    it('patch changes only the fields it names', async () => {
      await store.set('patch', { data: { a: '1', b: '2', c: '3' }, meta: { createdAt: 7, session: 'prefs', flash: { info: ['x'], error: ['y'] } }, expiresAt: hour() });
      const expiresAt = Date.now() + 120_000;
      await admin.hset(`${prefix}patch`, 'f:late', '["written meanwhile"]'); // another request's flash
      await store.patch('patch', { set: { b: '"two"', d: '4' }, unset: ['c'], flash: { set: { info: ['x', 'z'] }, unset: ['error'] }, maxAge: 9, expiresAt });
      expect(await admin.hgetall(`${prefix}patch`)).toEqual({
        'd:a': '1',
        'd:b': '"two"',
        'd:d': '4',
        c: '7',
        a: '9',
        n: '"prefs"',
        'f:info': '["x","z"]',
        'f:late': '["written meanwhile"]',
        e: String(expiresAt),
      });
      expect(await admin.pexpiretime(`${prefix}patch`)).toBe(expiresAt);
      await store.patch('patch', { ...patch({}), maxAge: null, expiresAt });
      expect(await store.get('patch')).toEqual({
        data: { a: '1', b: '"two"', d: '4' },
        meta: { createdAt: 7, session: 'prefs', flash: { info: ['x', 'z'], late: ['written meanwhile'] } },
        expiresAt,
      });
    });

    it('reads a hash whose fields are not what it writes as no session, never throws', async () => {
      const good = { c: '1', e: String(hour()), 'd:a': '1' };
      await admin.hset(`${prefix}garbage`, good);
      expect(await store.get('garbage')).toEqual({ data: { a: '1' }, meta: { createdAt: 1 }, expiresAt: Number(good.e) });
      const garbage: [string, Record<string, string>][] = [
        ['createdAt missing', { e: good.e, 'd:a': '1' }],
        ['createdAt not JSON', { ...good, c: 'yesterday' }],
        ['createdAt a string', { ...good, c: '"1"' }],
        ['maxAge not JSON', { ...good, a: 'forever' }],
        ['maxAge not a number', { ...good, a: '[1]' }],
        ['the session name not JSON', { ...good, n: 'prefs' }],
        ['the session name not a string', { ...good, n: '7' }],
        ['a flash list not JSON', { ...good, 'f:info': '["x"' }],
        ['a flash list that is no list', { ...good, 'f:info': '{"0":"x"}' }],
        ['the old single meta field only', { m: '{"createdAt":1}', e: good.e, 'd:a': '1' }],
        ['expiry not a number', { ...good, e: 'soon' }],
      ];
      for (const [what, hash] of garbage) {
        await admin.del(`${prefix}garbage`);
        await admin.hset(`${prefix}garbage`, hash);
        await expect(store.get('garbage'), what).resolves.toBeUndefined();
      }
    });

    it('patch on an unknown or destroyed id does not bring it back', async () => {
      await store.patch('patch-missing', patch({ a: '1' }));
      expect(await admin.exists(`${prefix}patch-missing`)).toBe(0);
      await store.set('patch-destroyed', record({ a: '1' }));
      await store.destroy('patch-destroyed');
      await store.patch('patch-destroyed', patch({ b: '2' }));
      expect(await store.get('patch-destroyed')).toBeUndefined();
    });

    it('keeps every key when 50 patches of different keys run at once', async () => {
      await store.set('concurrent', record({ base: '0' }));
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.patch('concurrent', patch({ [`k${i}`]: String(i) }))),
      );
      const data = (await store.get('concurrent'))!.data;
      expect(Object.keys(data)).toHaveLength(51);
      for (let i = 0; i < 50; i++) expect(data[`k${i}`]).toBe(String(i));
    });

    it('touch moves the expiry of an existing session and creates nothing for an unknown id', async () => {
      await store.set('touch', record({ a: '1' }, Date.now() + 10_000));
      const later = Date.now() + 600_000;
      await store.touch('touch', later);
      expect(await admin.pexpiretime(`${prefix}touch`)).toBe(later);
      expect((await store.get('touch'))?.expiresAt).toBe(later);
      await store.touch('touch-missing', later);
      expect(await admin.exists(`${prefix}touch-missing`)).toBe(0);
    });

    it('destroy removes the session; destroying an unknown id is fine', async () => {
      await store.set('destroy', record({ a: '1' }));
      await store.destroy('destroy');
      expect(await store.get('destroy')).toBeUndefined();
      await expect(store.destroy('destroy-missing')).resolves.toBeUndefined();
    });

    it('keeps each session under its prefix, so two prefixes never see each other', async () => {
      const other = new RedisStore({ client, prefix: `${prefix}other:` });
      await store.set('shared-id', record({ mine: '1' }));
      expect(await other.get('shared-id')).toBeUndefined();
    });

    it('rejects with SessionStoreError when Redis answers with an error', async () => {
      await admin.set(`${prefix}not-a-hash`, 'x');
      const failure = store.get('not-a-hash');
      await expect(failure).rejects.toBeInstanceOf(SessionStoreError);
      await expect(failure).rejects.toThrow(/RedisStore: get failed: WRONGTYPE/);
    });

    it('still works after Redis forgot its scripts (SCRIPT FLUSH)', async () => {
      await store.set('flush', record({ a: '1' }));
      await admin.script('FLUSH');
      await store.patch('flush', patch({ b: '2' }));
      expect((await store.get('flush'))?.data).toEqual({ a: '1', b: '2' });
    });

    it("keeps a user's index to their live sessions while they stay active, with no listing: a sorted set scored by expiry", async () => {
      const key = `${prefix}user:\x01z:active`;
      const live = tied('active');
      await store.set('active-live', live);
      const soon = Date.now() + 150;
      for (let i = 0; i < 20; i++) await store.set(`active-short-${i}`, tied('active', soon));
      await new Promise((resolve) => setTimeout(resolve, soon + 50 - Date.now()));
      // Each request of the user writes the live session again; nobody lists the user's sessions.
      const later = hour() + 60_000;
      for (let i = 0; i < 3; i++) await store.patch('active-live', { ...patch({ [`n${i}`]: '1' }), user: { id: 'active', lastSeenAt: Date.now() }, expiresAt: later });
      expect(await admin.type(key)).toBe('zset');
      expect(await admin.zrange(key, '0', '-1', 'WITHSCORES')).toEqual(['active-live', String(later)]);
      expect(await admin.pexpiretime(key)).toBe(later); // the index goes with its latest session
      await store.touch('active-live', later + 1000);
      expect(await admin.zscore(key, 'active-live')).toBe(String(later + 1000));
      await store.destroy('active-live');
      expect(await admin.exists(key)).toBe(0);
    });

    it('lists a user with more sessions than one read takes (500), each once', async () => {
      const ids = Array.from({ length: 1234 }, (_, i) => `many-${i}`);
      for (let i = 0; i < ids.length; i += 200) await Promise.all(ids.slice(i, i + 200).map((id) => store.set(id, tied('many'))));
      const listed = (await store.listByUser('many')).map((entry) => entry.id).sort();
      expect(listed).toEqual([...ids].sort());
      await Promise.all(ids.slice(0, 700).map((id) => admin.del(`${prefix}${id}`))); // gone behind the store's back
      expect((await store.listByUser('many')).map((entry) => entry.id).sort()).toEqual(ids.slice(700).sort());
      expect(await admin.zcard(`${prefix}user:\x01z:many`)).toBe(534); // the missing ones pruned
    });

    it("never lowers a session's score in the index: an index write that lands late cannot hide a session that still lives", async () => {
      const key = `${prefix}user:\x01z:late`;
      const late = Date.now() + 30 * 86_400_000;
      const soon = Date.now() + 300;
      // Two instances write the same session: A with a short expiry, then B extends it (setMaxAge).
      await store.set('late-1', tied('late', soon));
      await store.patch('late-1', { ...patch({ x: '1' }), expiresAt: late });
      // A's index write for its own write, delayed, lands after B's.
      await (store as unknown as { index(user: string, id: string, expiresAt: number): Promise<void> }).index('late', 'late-1', soon);
      await new Promise((resolve) => setTimeout(resolve, soon + 100 - Date.now()));
      expect((await store.listByUser('late')).map((e) => e.id)).toEqual(['late-1']);
      expect(await admin.zscore(key, 'late-1')).toBe(String(late));
      expect(await admin.pexpiretime(key)).toBe(late);
    });

    it('works beside instances of an earlier version that keep a plain set per user: reads and cleans it, never converts it', async () => {
      const oldKey = (user: string) => `${prefix}user:${user}`;
      const newKey = (user: string) => `${prefix}user:\x01z:${user}`;
      // What an earlier version does on a write of a tied session: SADD, and the set lives as long as its latest session.
      const oldIndex = async (user: string, ids: string[], ttl = 7_200_000) => {
        await admin.sadd(oldKey(user), ...ids);
        await admin.pexpire(oldKey(user), ttl);
      };
      await store.set('mix-1', tied('mix'));
      await store.set('mix-2', { ...tied('mix'), expiresAt: hour() + 60_000 });
      await admin.hset(`${prefix}mix-old`, 'c', JSON.stringify(Date.now()), 'e', String(hour()), 'u', 'mix', 't', JSON.stringify({ id: 'mix', lastSeenAt: Date.now() }));
      await admin.pexpireat(`${prefix}mix-old`, hour());
      await oldIndex('mix', ['mix-old', 'mix-1', 'mix-gone']);
      // An old instance keeps writing after the new ones did: no WRONGTYPE for it.
      await oldIndex('mix', ['mix-2']);
      expect((await admin.smembers(oldKey('mix'))).sort()).toEqual(['mix-1', 'mix-2', 'mix-gone', 'mix-old']);

      expect((await store.listByUser('mix')).map((e) => e.id).sort()).toEqual(['mix-1', 'mix-2', 'mix-old']);
      expect((await admin.smembers(oldKey('mix'))).sort()).toEqual(['mix-1', 'mix-2', 'mix-old']); // the gone one cleaned
      await store.destroy('mix-1'); // a sign-out on a new instance
      await store.patch('mix-old', { ...patch({ b: '2' }), user: null }); // re-tied to no one
      expect((await admin.smembers(oldKey('mix'))).sort()).toEqual(['mix-2']);
      expect(await admin.type(oldKey('mix'))).toBe('set'); // never converted: old instances can still use it
      expect(await admin.pttl(oldKey('mix'))).toBeGreaterThan(7_000_000); // and it still expires with its own TTL
      expect(await admin.zrange(newKey('mix'), '0', '-1')).toEqual(['mix-2']);
      expect(await admin.pexpiretime(newKey('mix'))).toBe(Number(await admin.zscore(newKey('mix'), 'mix-2'))); // the index goes with its latest session
      expect((await store.listByUser('mix')).map((e) => e.id)).toEqual(['mix-2']);
      await store.destroy('mix-2');
      expect(await admin.exists(oldKey('mix'), newKey('mix'))).toBe(0);
    });

    it('close() leaves a client it was given open', async () => {
      const own = new RedisStore({ client, prefix });
      await own.close();
      expect(holder.ready()).toBe(true);
      expect(await holder.ping()).toBe('PONG');
    });
  });
});

describe('RedisStore options', () => {
  it('creates its own client from `url`, and close() quits it', async () => {
    const fromUrl = new RedisStore({ url: URL, prefix: runPrefix });
    await fromUrl.set('from-url', record({ a: '1' }));
    expect((await new RedisStore({ client: admin, prefix: runPrefix }).get('from-url'))?.data).toEqual({ a: '1' });
    await fromUrl.close();
    await expect(fromUrl.get('from-url')).rejects.toBeInstanceOf(SessionStoreError);
    await expect(fromUrl.close()).resolves.toBeUndefined();
  });

  it('refuses bad options with a SessionConfigError naming the option', () => {
    const bad = (options: unknown, message: RegExp) => {
      const attempt = () => new RedisStore(options as never);
      expect(attempt).toThrow(SessionConfigError);
      expect(attempt).toThrow(message);
    };
    bad(undefined, /options object/);
    bad({}, /`client` or `url` is required/);
    bad({ client: admin, url: URL }, /either `client` or `url`, not both/);
    bad({ url: 'http://127.0.0.1:6379' }, /`url` must be a redis:\/\//);
    bad({ url: '' }, /`url` must be/);
    bad({ client: {} }, /`client` must be an ioredis Redis or Cluster/);
    bad({ client: admin, prefix: 5 }, /`prefix` must be a string/);
  });
});

// node-redis maps replies by its protocol and the client's typeMapping; the store reads the same under any of them.
const ODD_MAPPING = { [RESP_TYPES.BLOB_STRING]: Buffer, [RESP_TYPES.SIMPLE_STRING]: Buffer, [RESP_TYPES.MAP]: Map, [RESP_TYPES.NUMBER]: String };

describe.each(nodeRedisVersions)('RedisStore with a $name client set up otherwise', (version) => {
  const prefix = `${runPrefix}${version.name.replace(/\W+/g, '-')}-setups:`;
  const opened: NodeRedisHandle[] = [];
  const open = async (options?: Parameters<typeof nodeRedisClient>[2]) => {
    const handle = await nodeRedisClient(version, URL, options);
    opened.push(handle);
    return handle;
  };

  afterAll(() => Promise.all(opened.map((handle) => handle.close())));

  /** Writes, reads, patches, lists and ends a tied session through `client`, checking what Redis holds under `keyPrefix`. */
  async function exercise(client: RedisStoreClient, tag: string, keyPrefix = '') {
    const storePrefix = `${prefix}${tag}:`;
    const store = new RedisStore({ client, prefix: storePrefix });
    const at = (key: string) => `${keyPrefix}${storePrefix}${key}`;
    const user = { id: 'ada', lastSeenAt: 5 };
    const input: SessionRecord = { data: { a: '"x"', 'ключ 🔑': '1', 'a\u0000b': '2' }, meta: { createdAt: 7, maxAge: 9, session: 'prefs', flash: { info: ['hi'] }, user }, expiresAt: hour() };
    await store.set('s1', input);
    expect(await store.get('s1')).toEqual(input);
    expect(await admin.hget(at('s1'), 'c')).toBe('7');
    await store.patch('s1', { ...patch({ b: '2' }), unset: ['a'], expiresAt: input.expiresAt });
    expect((await store.get('s1'))?.data).toEqual({ 'ключ 🔑': '1', 'a\u0000b': '2', b: '2' });
    // The scripts' "not live" answer reads as such: a patch or touch of an unknown id writes and indexes nothing.
    await store.patch('missing', { ...patch({ c: '1' }), user });
    await store.touch('missing', hour());
    expect(await admin.exists(at('missing'))).toBe(0);
    expect(await admin.zrange(at('user:\x01z:ada'), '0', '-1')).toEqual(['s1']);
    expect((await store.listByUser('ada')).map((entry) => entry.id)).toEqual(['s1']);
    await store.destroy('s1');
    expect(await store.get('s1')).toBeUndefined();
    expect(await admin.exists(at('s1'), at('user:\x01z:ada'))).toBe(0);
    expect(await store.listByUser('ada')).toEqual([]);
  }

  it(`works over ${version.name === 'node-redis 6' ? 'RESP2' : 'RESP3'} too (the protocol that is not its default)`, async () => {
    const { client } = await open({ extra: { RESP: version.name === 'node-redis 6' ? 2 : 3 } });
    await exercise(client, 'protocol');
  });

  it('reads replies the same when the client maps them to Buffers, Maps and strings (typeMapping)', async () => {
    const { client } = await open({ extra: { commandOptions: { timeout: 2000, typeMapping: ODD_MAPPING } } });
    await exercise(client, 'mapped');
  });

  it('takes a withTypeMapping() view of a client as well', async () => {
    const { client } = await open();
    await exercise((client as unknown as { withTypeMapping(mapping: object): RedisStoreClient }).withTypeMapping(ODD_MAPPING), 'view');
  });

  it('shares its sessions with a store on ioredis: the same keys, the same scripts', async () => {
    const { client } = await open();
    const shared = `${prefix}shared:`;
    const mine = new RedisStore({ client, prefix: shared });
    const theirs = new RedisStore({ client: admin, prefix: shared });
    const user = { id: 'ada', lastSeenAt: 5 };
    await mine.set('s1', { ...tied('ada'), data: { a: '1' }, meta: { createdAt: 7, user } });
    await theirs.patch('s1', { ...patch({ b: '2' }), flash: { set: { info: ['hi'] }, unset: [] } });
    await mine.patch('s1', { ...patch({ c: '3' }), unset: ['a'] });
    expect(await theirs.get('s1')).toMatchObject({ data: { b: '2', c: '3' }, meta: { createdAt: 7, user, flash: { info: ['hi'] } } });
    expect((await theirs.listByUser('ada')).map((entry) => entry.id)).toEqual(['s1']);
    await theirs.destroy('s1');
    expect(await mine.get('s1')).toBeUndefined();
    expect(await mine.listByUser('ada')).toEqual([]);
  });

  it('says to connect a client that was never connected, and answers once it is', async () => {
    const handle = await open({ connect: false });
    const store = new RedisStore({ client: handle.client, prefix: `${prefix}late:` });
    const failure = store.get('x');
    await expect(failure).rejects.toBeInstanceOf(SessionStoreError);
    await expect(failure).rejects.toThrow(/RedisStore: get failed: .*the node-redis client is not open: call `await client.connect\(\)` before serving/);
    await (handle.client as unknown as { connect(): Promise<unknown> }).connect();
    await store.set('x', record({ a: '1' }));
    expect((await store.get('x'))?.data).toEqual({ a: '1' });
  });
});

describe('RedisStore with a node-redis 6 client that prefixes every key (keyPrefix)', () => {
  it('keeps sessions and users\' indexes under the prefix, and finds them there', async () => {
    const handle = await nodeRedisClient(nodeRedisVersions[0], URL, { extra: { keyPrefix: 'kp:' } });
    try {
      const storePrefix = `${runPrefix}key-prefix:`;
      const store = new RedisStore({ client: handle.client, prefix: storePrefix });
      await store.set('s1', tied('ada'));
      await store.set('s2', tied('ada'));
      expect(await admin.exists(`kp:${storePrefix}s1`, `kp:${storePrefix}s2`, `kp:${storePrefix}user:\x01z:ada`)).toBe(3);
      expect(await admin.exists(`${storePrefix}s1`)).toBe(0);
      expect((await store.listByUser('ada')).map((entry) => entry.id).sort()).toEqual(['s1', 's2']);
      await store.destroy('s1');
      expect((await store.listByUser('ada')).map((entry) => entry.id)).toEqual(['s2']);
      await store.destroy('s2');
      expect(await admin.exists(`kp:${storePrefix}s2`, `kp:${storePrefix}user:\x01z:ada`)).toBe(0);
    } finally {
      await handle.close();
    }
  });
});
