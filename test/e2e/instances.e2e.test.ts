import { randomBytes } from 'node:crypto';
import { Controller, Get, HttpCode, Module, Param, Post } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { startRedisCluster, type RedisCluster } from '../support/redis-cluster.js';
import { postgresUrl, redisUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';

const REDIS_URL = redisUrl();
const POSTGRES_URL = postgresUrl();
/** Every key, table and prefix this file creates is named after this run. */
const RUN = `e2e_instances_${randomBytes(4).toString('hex')}`;

@Controller()
class InstanceController {
  @Get('all')
  all(@Session() session: Session) {
    return { data: session.toJSON(), isNew: session.isNew };
  }

  @Get('set/:key/:value')
  set(@Session() session: Session, @Param('key') key: string, @Param('value') value: string) {
    session.set(key, value);
    return { ok: true };
  }

  @Post('regenerate')
  @HttpCode(200)
  async regenerate(@Session() session: Session) {
    await session.regenerate();
    return { ok: true };
  }

  @Post('destroy')
  @HttpCode(200)
  async destroy(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }
}

function moduleWith(store: SessionStore) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [InstanceController] })
  class InstanceModule {}
  return InstanceModule;
}

/**
 * One shared back-end. `pair` gives two store objects, each with its own connection, that point at
 * the same data: what two app instances of one deployment have.
 */
interface Backend {
  name: string;
  setup(): Promise<void>;
  pair(tag: string): [SessionStore, SessionStore];
  teardown(): Promise<void>;
}

function redisBackend(): Backend {
  const clients: Redis[] = [];
  const prefix = `test:${RUN}:`;
  const connect = () => {
    const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 0, commandTimeout: 5000 });
    clients.push(client);
    return client;
  };
  return {
    name: 'one Redis',
    async setup() {
      const probe = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined); // a refused connection is reported below, with what to do
      try {
        await probe.connect();
        await probe.ping();
      } catch (err) {
        throw new Error(`needs Redis at ${REDIS_URL} (test/support/global-setup.ts starts it, or set REDIS_URL): ${(err as Error).message}`, { cause: err });
      } finally {
        probe.disconnect();
      }
    },
    pair: (tag) => [new RedisStore({ client: connect(), prefix: `${prefix}${tag}:` }), new RedisStore({ client: connect(), prefix: `${prefix}${tag}:` })],
    async teardown() {
      const [first] = clients;
      try {
        if (first !== undefined && first.status === 'ready') {
          const keys = await first.keys(`${prefix}*`);
          if (keys.length > 0) await first.del(...keys);
        }
      } finally {
        for (const client of clients.splice(0)) await client.quit().catch(() => client.disconnect());
      }
    },
  };
}

function clusterBackend(): Backend {
  let cluster: RedisCluster | undefined;
  const clients: Cluster[] = [];
  const connect = () => {
    const client = new Cluster(cluster!.nodes, { redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 5000 } });
    clients.push(client);
    return client;
  };
  return {
    name: 'a Redis Cluster (three masters started by the test)',
    async setup() {
      try {
        cluster = await startRedisCluster();
      } catch (err) {
        throw new Error(
          `needs redis-server and redis-cli on PATH, to start a Redis Cluster: ${(err as Error).message}`,
          { cause: err },
        );
      }
    },
    pair: (tag) => {
      const [a, b] = [connect(), connect()];
      return [new RedisStore({ client: a, prefix: `test:${RUN}:${tag}:` }), new RedisStore({ client: b, prefix: `test:${RUN}:${tag}:` })];
    },
    async teardown() {
      try {
        for (const client of clients.splice(0)) await client.quit().catch(() => client.disconnect());
      } finally {
        await cluster?.stop(); // the nodes keep nothing on disk: stopping them is the cleanup
        cluster = undefined;
      }
    },
  };
}

function postgresBackend(): Backend {
  const pools: pg.Pool[] = [];
  const tables: string[] = [];
  const newPool = () => {
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 10, connectionTimeoutMillis: 5000 });
    pools.push(pool);
    return pool;
  };
  return {
    name: 'one PostgreSQL table',
    async setup() {
      const probe = new pg.Pool({ connectionString: POSTGRES_URL, max: 1, connectionTimeoutMillis: 5000 });
      try {
        await probe.query('SELECT 1');
      } catch (err) {
        throw new Error(`needs PostgreSQL at ${POSTGRES_URL} (test/support/global-setup.ts starts it, or set DATABASE_URL): ${(err as Error).message}`, { cause: err });
      } finally {
        await probe.end();
      }
    },
    pair: (tag) => {
      const tableName = `${RUN}_${tag}`;
      tables.push(tableName);
      return [
        new PostgresStore({ pool: newPool(), tableName, sweepInterval: 0 }),
        new PostgresStore({ pool: newPool(), tableName, sweepInterval: 0 }),
      ];
    },
    async teardown() {
      try {
        const [first] = pools;
        if (first !== undefined) for (const table of tables.splice(0)) await first.query(`DROP TABLE IF EXISTS "${table}"`);
      } finally {
        for (const pool of pools.splice(0)) await pool.end().catch(() => undefined);
      }
    },
  };
}

// Two platforms are enough to show instances share sessions: plain Express and plain Fastify.
const twoPlatforms = [platforms[0], platforms[2]].map((platform, index) => ({ platform, name: platform.name, tag: String(index) }));

describe.each([redisBackend(), clusterBackend(), postgresBackend()].map((backend) => ({ backend, name: backend.name })))(
  'two app instances on $name',
  ({ backend }) => {
    beforeAll(() => backend.setup());
    afterAll(() => backend.teardown());

    describe.each(twoPlatforms)('on $name', ({ platform, tag }) => {
      let a: TestApp | undefined;
      let b: TestApp | undefined;
      beforeAll(async () => {
        const [storeA, storeB] = backend.pair(tag);
        a = await platform.create(moduleWith(storeA));
        b = await platform.create(moduleWith(storeB));
      });
      afterAll(async () => {
        await Promise.allSettled([a?.close(), b?.close()]);
      });

      const call = (t: TestApp | undefined, method: 'get' | 'post', path: string, jar: CookieJar) => {
        const req = t!.http()[method](path);
        const header = jar.header();
        return header ? req.set('Cookie', header) : req;
      };
      const jarWith = (value: string) => {
        const jar = new CookieJar();
        jar.set('sid', value);
        return jar;
      };

      it('a session created through A is read and changed through B, and destroyed through A is dead through B', async () => {
        const jar = new CookieJar();
        const created = await call(a, 'get', '/set/user/ada', jar);
        expect(created.status).toBe(200);
        expect(jar.take(created).map((c) => c.name)).toEqual(['sid']);
        const sid = jar.get('sid')!;

        expect((await call(b, 'get', '/all', jar)).body).toEqual({ data: { user: 'ada' }, isNew: false });
        const changed = await call(b, 'get', '/set/role/admin', jar);
        expect(changed.status).toBe(200);
        jar.take(changed);
        expect(jar.get('sid')).toBe(sid);
        expect((await call(a, 'get', '/all', jar)).body).toEqual({ data: { user: 'ada', role: 'admin' }, isNew: false });

        const destroyed = await call(a, 'post', '/destroy', jar);
        expect(destroyed.status).toBe(200);
        expect(setCookies(destroyed.headers).map((c) => [c.name, c.value])).toEqual([['sid', '']]);
        const replay = jarWith(sid);
        expect((await call(b, 'get', '/all', replay)).body).toEqual({ data: {}, isNew: true });
        // B never brings the destroyed id back, even when asked to write to it.
        const rewrite = await call(b, 'get', '/set/user/mallory', replay);
        expect(setCookies(rewrite.headers)[0].value.split('.')[0]).not.toBe(sid.split('.')[0]);
        expect((await call(a, 'get', '/all', jarWith(sid))).body).toEqual({ data: {}, isNew: true });
      });

      it('regenerate() through A kills the old id for B too', async () => {
        const jar = new CookieJar();
        jar.take(await call(a, 'get', '/set/user/ada', jar));
        const old = jar.get('sid')!;
        jar.take(await call(a, 'post', '/regenerate', jar));
        expect(jar.get('sid')).not.toBe(old);
        expect((await call(b, 'get', '/all', jar)).body).toEqual({ data: { user: 'ada' }, isNew: false });
        expect((await call(b, 'get', '/all', jarWith(old))).body).toEqual({ data: {}, isNew: true });
      });

      it('100 concurrent requests alternating between A and B, each setting its own key, lose none', async () => {
        const jar = new CookieJar();
        jar.take(await call(a, 'get', '/set/base/0', jar));
        const responses = await Promise.all(Array.from({ length: 100 }, (_, i) => call(i % 2 === 0 ? a : b, 'get', `/set/k${i}/${i}`, jar)));
        expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
        const expected: Record<string, string> = { base: '0' };
        for (let i = 0; i < 100; i++) expected[`k${i}`] = String(i);
        expect((await call(a, 'get', '/all', jar)).body).toEqual({ data: expected, isNew: false });
        expect((await call(b, 'get', '/all', jar)).body).toEqual({ data: expected, isNew: false });
      });
    });
  },
);
