import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SessionStoreError } from '../../src/session/session.errors.js';
import type { SessionRecord } from '../../src/stores/session-store.interface.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { nodeRedisClient, nodeRedisVersions, type NodeRedisHandle } from '../support/redis-clients.js';
import { sleep, startRedisServer, type RedisServer } from '../support/redis-server.js';

// Generous: the store's own bound is about two seconds; this only catches a call that hangs.
const BOUND_MS = 5000;
let server: RedisServer | undefined;
const stores: RedisStore[] = [];
const clients: NodeRedisHandle[] = [];
// The store logs each outage and each recovery; captured here so they can be checked and stay out of the output.
const errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
const logged = vi.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);

const record = (data: Record<string, string>): SessionRecord => ({ data, meta: { createdAt: Date.now() }, expiresAt: Date.now() + 3_600_000 });

/**
 * How the store gets its client: its own ioredis client from `url` (which logs each outage), or a
 * node-redis client set up as docs/stores/redis.md says. `connected: false`: Redis is down, so the
 * client's connect() is started but cannot finish.
 */
interface ClientSetup {
  name: string;
  logs: boolean;
  newStore(connected: boolean): Promise<RedisStore>;
}

const setups: ClientSetup[] = [
  {
    name: 'its own ioredis client (`url`)',
    logs: true,
    newStore: async () => {
      const store = new RedisStore({ url: `redis://127.0.0.1:${server!.port}`, prefix: `test:outage:${randomUUID()}:` });
      stores.push(store);
      return store;
    },
  },
  ...nodeRedisVersions.map((version) => ({
    name: `a ${version.name} client`,
    logs: false,
    newStore: async (connected: boolean) => {
      const handle = await nodeRedisClient(version, `redis://127.0.0.1:${server!.port}`, { wait: connected });
      clients.push(handle);
      return new RedisStore({ client: handle.client, prefix: `test:outage:${randomUUID()}:` });
    },
  })),
];

/** The call's outcome, or a failure if it neither resolves nor rejects within BOUND_MS. */
async function settle<T>(call: Promise<T>): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the call neither resolved nor rejected within ${BOUND_MS} ms`)), BOUND_MS);
  });
  try {
    return await Promise.race([Promise.allSettled([call]).then(([result]) => result), hang]);
  } finally {
    clearTimeout(timer);
  }
}

async function expectRejectsInTime(call: Promise<unknown>): Promise<void> {
  const result = await settle(call);
  expect(result.status).toBe('rejected');
  expect((result as PromiseRejectedResult).reason).toBeInstanceOf(SessionStoreError);
}

/** Retries until the store answers again, for at most 10 s. */
async function eventually(check: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

beforeAll(async () => {
  try {
    server = await startRedisServer();
  } catch (err) {
    throw new Error(`these tests start their own redis-server: they need redis-server on PATH (${(err as Error).message})`, { cause: err });
  }
});

afterAll(async () => {
  try {
    await Promise.all([...stores.map((store) => store.close()), ...clients.map((client) => client.close())]);
  } finally {
    await server?.stop();
    errors.mockRestore();
    logged.mockRestore();
  }
});

describe.each(setups)('RedisStore with $name while Redis is down', ({ logs, newStore }) => {
  it('rejects every call within a bounded time, then works again by itself once Redis is back', async () => {
    const store = await newStore(true);
    await store.set('before', record({ a: '1' }));
    expect((await store.get('before'))?.data).toEqual({ a: '1' });

    errors.mockClear();
    await server!.stop();
    await expectRejectsInTime(store.get('before'));
    await expectRejectsInTime(store.set('during', record({ b: '2' })));
    await expectRejectsInTime(store.patch('before', { set: { c: '3' }, unset: [], flash: { set: {}, unset: [] }, expiresAt: Date.now() + 60_000 }));
    await expectRejectsInTime(store.touch('before', Date.now() + 60_000));
    await expectRejectsInTime(store.destroy('before'));
    // Still failing fast after a while of reconnect attempts, not only right after the drop.
    await sleep(1500);
    await expectRejectsInTime(store.get('before'));
    if (logs) {
      // One log line for the outage, not one per reconnect attempt.
      expect(errors).toHaveBeenCalledTimes(1);
      expect(errors).toHaveBeenCalledWith(expect.stringContaining(`ECONNREFUSED 127.0.0.1:${server!.port}`));
    }

    await server!.restart();
    // The same store object recovers: no new store, no new client.
    await eventually(async () => {
      await store.set('after', record({ d: '4' }));
    });
    expect((await store.get('after'))?.data).toEqual({ d: '4' });
    if (logs) expect(logged).toHaveBeenCalledWith('Redis connection is back');
    // This server keeps nothing on disk (no RDB, no AOF), so the session written before the outage
    // is gone: only recovery is tested here, not durability.
    expect(await store.get('before')).toBeUndefined();
  });

  it('rejects within a bounded time when Redis is already down before the first call', async () => {
    await server!.stop();
    const store = await newStore(false);
    await expectRejectsInTime(store.get('x'));
    await expectRejectsInTime(store.set('x', record({ a: '1' })));
    await server!.restart();
    await eventually(async () => {
      await store.set('x', record({ a: '1' }));
    });
    expect((await store.get('x'))?.data).toEqual({ a: '1' });
  });
});
