import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionRecord } from '../../src/stores/session-store.interface.js';
import { RedisStore, type RedisStoreClient } from '../../src/stores/redis.store.js';
import { defineSessionStoreTests } from '../../src/testing/index.js';
import { nodeRedisCluster, nodeRedisVersions, type NodeRedisHandle } from '../support/redis-clients.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { indexSize } from '../support/redis-server.js';

const runPrefix = `test:redis-cluster:${randomUUID()}:`;
let cluster: RedisCluster | undefined;
/** An ioredis Cluster that reads what the stores wrote, whichever client they write with. */
let admin: Cluster;

const record = (data: Record<string, string>): SessionRecord => ({ data, meta: { createdAt: Date.now() }, expiresAt: Date.now() + 3_600_000 });

beforeAll(async () => {
  try {
    cluster = await startRedisCluster();
  } catch (err) {
    throw new Error(
      `these tests start a Redis Cluster themselves: they need redis-server and redis-cli on PATH (${(err as Error).message})`,
      { cause: err },
    );
  }
  admin = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 5000 } });
  await admin.ping();
});

afterAll(async () => {
  try {
    if (admin) await admin.quit().catch(() => admin.disconnect());
  } finally {
    await cluster?.stop(); // the nodes keep nothing on disk: stopping them is the cleanup
  }
});

/** Keys under `pattern` on every master: KEYS only sees the node it is sent to. */
async function countKeys(pattern: string): Promise<number> {
  const counts = await Promise.all(admin.nodes('master').map(async (node) => (await node.keys(pattern)).length));
  return counts.reduce((a, b) => a + b, 0);
}

/**
 * The cluster clients the store takes, each running the same tests: an ioredis `Cluster` (as before:
 * the inspecting client is the store's), and node-redis 6 and 5 `createCluster()` set up as
 * docs/stores/redis.md says.
 */
const clients: { name: string; slug: string; open(): Promise<NodeRedisHandle> }[] = [
  { name: 'an ioredis Cluster', slug: 'ioredis', open: async () => ({ client: admin, ready: () => admin.status === 'ready', ping: () => admin.ping(), close: async () => undefined }) },
  ...nodeRedisVersions.map((version) => ({ name: `a ${version.name} cluster`, slug: version.name.replace(/\W+/g, '-'), open: () => nodeRedisCluster(version, cluster!.nodes) })),
];

describe.each(clients)('RedisStore with $name', ({ slug, open }) => {
  const prefix = `${runPrefix}${slug}:`;
  let holder: NodeRedisHandle | undefined;
  let client: RedisStoreClient;

  beforeAll(async () => {
    holder = await open();
    client = holder.client;
  });

  afterAll(() => holder?.close());

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
      title: 'RedisStore conformance on Redis Cluster',
      countSessions: async (s) => (await countKeys(`${casePrefixes.get(s)}*`)) - (await countKeys(`${casePrefixes.get(s)}user:*`)),
      countIndexed: async (s) => {
        const sizes = await Promise.all(
          admin.nodes('master').map(async (node) => {
            const sets = await node.keys(`${casePrefixes.get(s)}user:*`);
            return (await Promise.all(sets.map(async (key) => indexSize(node, key)))).reduce((a, b) => a + b, 0);
          }),
        );
        return sizes.reduce((a, b) => a + b, 0);
      },
    },
  );

  describe('RedisStore on a three-master Redis Cluster', () => {
    it("keeps a user's set and their sessions in different slots, and lists and ends them there", async () => {
      const store = new RedisStore({ client, prefix: `${prefix}users:` });
      const user = { id: 'ada', lastSeenAt: Date.now() };
      const ids = Array.from({ length: 12 }, (_, i) => `device-${i}`);
      await Promise.all(ids.map((id) => store.set(id, { ...record({ n: '1' }), meta: { createdAt: Date.now(), user } })));
      const slots = new Set(await Promise.all([`${prefix}users:user:\x01z:ada`, ...ids.map((id) => `${prefix}users:${id}`)].map(async (key) => await admin.cluster('KEYSLOT', key))));
      expect(slots.size).toBeGreaterThan(3);
      expect((await store.listByUser('ada')).map((e) => e.id).sort()).toEqual([...ids].sort());
      await Promise.all(ids.slice(0, 10).map((id) => store.destroy(id)));
      expect((await store.listByUser('ada')).map((e) => e.id).sort()).toEqual(ids.slice(10).sort());
      expect(await admin.zcard(`${prefix}users:user:\x01z:ada`)).toBe(2);
    });

    it('stores sessions whose keys land on every master, each session in one slot', async () => {
      const store = new RedisStore({ client, prefix });
      const ids = Array.from({ length: 30 }, (_, i) => `spread-${i}`);
      await Promise.all(ids.map((id) => store.set(id, record({ id: JSON.stringify(id) }))));
      await Promise.all(ids.map((id) => store.patch(id, { set: { more: '1' }, unset: ['id'], flash: { set: { info: ['x'] }, unset: [] }, maxAge: 5000, expiresAt: Date.now() + 60_000 })));
      for (const id of ids) expect(await store.get(id)).toMatchObject({ data: { more: '1' }, meta: { maxAge: 5000, flash: { info: ['x'] } } });
      const masters = new Set(
        await Promise.all(ids.map(async (id) => await admin.cluster('KEYSLOT', `${prefix}${id}`))).then((slots) =>
          slots.map((slot) => admin.slots[slot]?.[0]),
        ),
      );
      expect(masters.size).toBe(3);
    });
  });
});
