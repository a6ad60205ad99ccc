import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { FileStore, MemoryStore } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';

/** Everything put in Redis, PostgreSQL or on disk is named after this run. */
const RUN = `e2e_users_${randomBytes(4).toString('hex')}`;

/** A kind of server-side store: its service checked once, a store per app, cleaned up after. */
export interface StoreKind {
  name: string;
  setup(): Promise<void>;
  /** A store of its own for `key` (keys, tables, directories named after it). */
  create(key: string): SessionStore;
  teardown(): Promise<void>;
}

const memory: StoreKind = {
  name: 'MemoryStore',
  setup: async () => undefined,
  create: () => new MemoryStore({ sweepInterval: 0 }),
  teardown: async () => undefined,
};

const directories: string[] = [];
const file: StoreKind = {
  name: 'FileStore',
  setup: async () => undefined,
  create: () => {
    const directory = mkdtempSync(join(tmpdir(), `${RUN}-`));
    directories.push(directory);
    return new FileStore({ directory, sweepInterval: 0 });
  },
  teardown: async () => {
    for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
  },
};

/** Where the Redis and PostgreSQL stores connect (the test file asks the run for them). */
const urls = { redis: '', postgres: '' };

let redisClient: Redis | undefined;
const redis: StoreKind = {
  name: 'RedisStore',
  setup: async () => {
    redisClient = new Redis(urls.redis, { maxRetriesPerRequest: 0 });
    await redisClient.ping();
  },
  create: (key) => new RedisStore({ client: redisClient!, prefix: `test:${RUN}:${key}:` }),
  teardown: async () => {
    const client = redisClient;
    redisClient = undefined;
    if (client === undefined) return;
    try {
      const keys = await client.keys(`test:${RUN}:*`);
      if (keys.length > 0) await client.del(...keys);
    } finally {
      await client.quit().catch(() => client.disconnect());
    }
  },
};

let pool: pg.Pool | undefined;
const tables: string[] = [];
const postgres: StoreKind = {
  name: 'PostgresStore',
  setup: async () => {
    pool = new pg.Pool({ connectionString: urls.postgres, max: 10 });
    await pool.query('SELECT 1');
  },
  create: (key) => {
    const tableName = `${RUN}_${key.replace(/[^A-Za-z0-9_]/g, '_')}`.slice(0, 48);
    tables.push(tableName);
    return new PostgresStore({ pool: pool!, tableName, sweepInterval: 0 });
  },
  teardown: async () => {
    const current = pool;
    pool = undefined;
    if (current === undefined) return;
    try {
      for (const table of tables.splice(0)) await current.query(`DROP TABLE IF EXISTS "${table}"`);
    } finally {
      await current.end();
    }
  },
};

export { memory as memoryStoreKind };

/** Every server-side store, each able to list a user's sessions, with the servers of this run. */
export function serverStoreKinds(redisUrl: string, postgresUrl: string): StoreKind[] {
  urls.redis = redisUrl;
  urls.postgres = postgresUrl;
  return [memory, file, redis, postgres];
}
