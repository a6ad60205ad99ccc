import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { Logger } from '@nestjs/common';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { SessionStoreError } from '../../src/session/session.errors.js';
import { FileStore } from '../../src/stores/file.store.js';
import { MemoryStore } from '../../src/stores/memory.store.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { freePort } from '../support/server-process.js';
import { postgresUrl, redisUrl } from '../support/services.js';

// `ping()` of the built-in stores: what the health indicator calls. It answers when the back-end
// can serve sessions and rejects when it cannot, and reads or writes no session.

const base = mkdtempSync(join(tmpdir(), 'store-ping-'));
const closers: (() => unknown)[] = [];
afterAll(async () => {
  for (const close of closers) await close();
  rmSync(base, { recursive: true, force: true });
});

describe('RedisStore.ping', () => {
  it('answers with Redis up, and writes nothing', async () => {
    const client = new Redis(redisUrl(), { lazyConnect: true, maxRetriesPerRequest: 0 });
    closers.push(() => client.quit());
    const prefix = `test:ping:${process.pid}:`;
    const store = new RedisStore({ client, prefix });
    await expect(store.ping()).resolves.toBeUndefined();
    expect(await client.keys(`${prefix}*`)).toEqual([]);
  });

  it('rejects with a SessionStoreError while nothing answers', async () => {
    const logged = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    closers.push(() => logged.mockRestore());
    const store = new RedisStore({ url: `redis://127.0.0.1:${await freePort()}` });
    closers.push(() => store.close());
    const failure = await store.ping().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(SessionStoreError);
    expect((failure as Error).message).toMatch(/^RedisStore: ping failed: /);
  });
});

describe('PostgresStore.ping', () => {
  it('answers with PostgreSQL up, without creating its table', async () => {
    const pool = new pg.Pool({ connectionString: postgresUrl(), max: 2 });
    closers.push(() => pool.end());
    const table = `ping_${process.pid}`;
    const store = new PostgresStore({ pool, tableName: table, sweepInterval: 0 });
    await expect(store.ping()).resolves.toBeUndefined();
    const { rows } = await pool.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [table]);
    expect(rows[0].exists).toBe(false);
  });

  it('rejects with a SessionStoreError while nothing answers', async () => {
    const pool = new pg.Pool({ host: '127.0.0.1', port: await freePort(), user: 'nobody', connectionTimeoutMillis: 2000 });
    pool.on('error', () => undefined);
    closers.push(() => pool.end());
    const store = new PostgresStore({ pool, sweepInterval: 0 });
    await expect(store.ping()).rejects.toThrow(/^PostgresStore: ping failed: .*ECONNREFUSED/);
    await expect(store.ping()).rejects.toBeInstanceOf(SessionStoreError);
  });
});

describe('FileStore.ping', () => {
  it('answers for a directory it can use, creating it as the first write would', async () => {
    const directory = join(base, 'not-yet', 'sessions');
    const store = new FileStore({ directory, sweepInterval: 0 });
    await expect(store.ping()).resolves.toBeUndefined();
    // Removed after the first check: created again, as a write would.
    rmSync(directory, { recursive: true });
    await expect(store.ping()).resolves.toBeUndefined();
  });

  it('rejects, naming no path, when the directory cannot be made', async () => {
    const file = join(base, 'a-file');
    writeFileSync(file, 'not a directory');
    const store = new FileStore({ directory: join(file, 'sessions'), sweepInterval: 0 });
    const failure = await store.ping().then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    expect(failure).toBeInstanceOf(SessionStoreError);
    expect(failure!.message).toBe('FileStore cannot use its directory (ENOTDIR): check that it exists and is readable and writable');
  });

  it('rejects when the path is a file', async () => {
    const file = join(base, 'another-file');
    writeFileSync(file, 'not a directory');
    const store = new FileStore({ directory: file, sweepInterval: 0 });
    await expect(store.ping()).rejects.toThrow(/^FileStore cannot use its directory \((EEXIST|ENOTDIR)\)/);
  });
});

describe('MemoryStore.ping', () => {
  it('always answers, at once', () => {
    expect(new MemoryStore({ sweepInterval: 0 }).ping()).toBeUndefined();
  });
});
