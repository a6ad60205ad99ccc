import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieStore, FileStore, MemoryStore, type AnySessionStore } from '../../src/index.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { postgresUrl, redisUrl } from '../support/services.js';
import { csrfModule } from './csrf.fixture.js';

/** Everything this file puts in Redis, PostgreSQL or on disk is named after this run. */
const RUN = `e2e_csrf_${randomBytes(4).toString('hex')}`;

let redis: Redis | undefined;
let pool: pg.Pool | undefined;
const dirs: string[] = [];
const tables: string[] = [];

/** The CSRF secret is session data under an internal key: every store keeps it, none was changed for it. */
const kinds: { name: string; create: (index: number) => AnySessionStore }[] = [
  { name: 'MemoryStore', create: () => new MemoryStore({ sweepInterval: 0 }) },
  { name: 'CookieStore', create: () => new CookieStore({ secret: 'a-cookie-store-key-that-is-long-enough-0123456789' }) },
  {
    name: 'FileStore',
    create: () => {
      const directory = mkdtempSync(join(tmpdir(), `${RUN}-`));
      dirs.push(directory);
      return new FileStore({ directory, sweepInterval: 0 });
    },
  },
  { name: 'RedisStore', create: (index) => new RedisStore({ client: redis!, prefix: `test:${RUN}:${index}:` }) },
  {
    name: 'PostgresStore',
    create: (index) => {
      const tableName = `${RUN}_${index}`;
      tables.push(tableName);
      return new PostgresStore({ pool: pool!, tableName, sweepInterval: 0 });
    },
  },
];

const cases = kinds.flatMap((kind, k) => platforms.map((platform, p) => ({ kind, platform, index: k * platforms.length + p, label: `${kind.name} on ${platform.name}` })));

beforeAll(async () => {
  redis = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
  await redis.ping();
  pool = new pg.Pool({ connectionString: postgresUrl(), max: 4 });
});

afterAll(async () => {
  const keys = (await redis?.keys(`test:${RUN}:*`)) ?? [];
  if (keys.length > 0) await redis!.del(...keys);
  await redis?.quit();
  for (const table of tables) await pool?.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool?.end();
  for (const directory of dirs) rmSync(directory, { recursive: true, force: true });
});

describe.each(cases)('CSRF secret kept by $label', ({ kind, platform, index }) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await platform.create(csrfModule({ store: kind.create(index) }));
  });
  afterAll(async () => {
    await app?.close();
  });

  it('a token verifies on the next requests, stays hidden, and a sign-in rotates it', async () => {
    const jar = new CookieJar();
    const form = await app.http().get('/form');
    jar.take(form);
    const before = (form.body as { token: string }).token;
    const post = (token: string) => app.http().post('/transfer').set('Cookie', jar.header()).set('x-csrf-token', token);

    expect((await post(before)).status).toBe(200);
    const view = await app.http().get('/session').set('Cookie', jar.header());
    expect((view.body as { data: unknown }).data).toEqual({});

    const login = await app.http().post('/login').set('Cookie', jar.header()).set('x-csrf-token', before);
    expect(login.status).toBe(200);
    jar.take(login);
    expect((await post(before)).status).toBe(403);
    const after = await app.http().get('/form').set('Cookie', jar.header());
    jar.take(after);
    expect((await post((after.body as { token: string }).token)).status).toBe(200);
  });
});
