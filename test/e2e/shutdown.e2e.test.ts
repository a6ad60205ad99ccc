import { Controller, Get, Module } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileStore, MemoryStore, Session, SessionModule } from '../../src/index.js';
import type { SessionPatch, SessionRecord, SessionStore } from '../../src/store.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { setCookies } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { postgresUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Controller()
class ShutdownController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}

function moduleWith(options: Parameters<typeof SessionModule.forRoot>[0]) {
  @Module({ imports: [SessionModule.forRoot(options)], controllers: [ShutdownController] })
  class ShutdownModule {}
  return ShutdownModule;
}

/** A MemoryStore whose writes take `delay` ms, and which says when a write has started and finished. */
class SlowStore implements SessionStore {
  readonly inner = new MemoryStore({ sweepInterval: 0 });
  writeStarted!: Promise<void>;
  finishedWrites = 0;
  private started!: () => void;

  constructor(private readonly delay: number) {
    this.expectWrite();
  }

  expectWrite(): void {
    this.writeStarted = new Promise((resolve) => (this.started = resolve));
  }

  get(id: string): SessionRecord | undefined {
    return this.inner.get(id);
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    this.started();
    await sleep(this.delay);
    this.inner.set(id, record);
    this.finishedWrites++;
  }

  patch(id: string, patch: SessionPatch): void {
    this.inner.patch(id, patch);
  }

  touch(id: string, expiresAt: number): void {
    this.inner.touch(id, expiresAt);
  }

  destroy(id: string): void {
    this.inner.destroy(id);
  }
}

// Names of this file only: a directory and a PostgreSQL table of its own.
const run = randomBytes(4).toString('hex');
const table = `nest_sessions_shutdown_${run}`;
let directory: string;
let pool: pg.Pool;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'nest-sessions-shutdown-'));
  pool = new pg.Pool({ connectionString: postgresUrl(), max: 4 });
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
  await pool.query(`DROP TABLE IF EXISTS "${table}"`);
  await pool.end();
});

describe.each(platforms)('app.close() on $name', (platform) => {
  it('stops the sweep timers of the memory, file and PostgreSQL stores (and closes each store once)', async () => {
    const memory = new MemoryStore({ sweepInterval: 20 });
    const files = new FileStore({ directory: join(directory, platform.name), sweepInterval: 20, fsync: false });
    const postgres = new PostgresStore({ pool, tableName: table, sweepInterval: 20 });
    const stores = { memory, files, postgres };
    const sweeps = Object.fromEntries(Object.entries(stores).map(([name, store]) => [name, vi.spyOn(store, 'reclaim')]));
    const closes = Object.fromEntries(Object.entries(stores).map(([name, store]) => [name, vi.spyOn(store, 'close')]));
    const t = await platform.create(
      moduleWith({
        secret: SECRET,
        store: memory,
        sessions: { files: { store: files }, pg: { store: postgres } },
      }),
    );

    // The timers run while the app runs: the spies see them (else this test could not fail).
    const deadline = Date.now() + 5000;
    while (Object.values(sweeps).some((spy) => spy.mock.calls.length < 2) && Date.now() < deadline) await sleep(20);
    for (const [name, spy] of Object.entries(sweeps)) expect(spy.mock.calls.length, `${name} sweeps while running`).toBeGreaterThanOrEqual(2);

    await t.close();
    for (const [name, spy] of Object.entries(closes)) expect(spy, `${name} closed`).toHaveBeenCalledTimes(1);
    const after = Object.fromEntries(Object.entries(sweeps).map(([name, spy]) => [name, spy.mock.calls.length]));
    // Ten sweep intervals later, no store has swept again.
    await sleep(200);
    for (const [name, spy] of Object.entries(sweeps)) expect(spy.mock.calls.length, `${name} sweeps after close`).toBe(after[name]);
    vi.restoreAllMocks();
  });

  it('lets a save that is in flight finish: the request gets its response and cookie, and the store holds the session', async () => {
    const store = new SlowStore(300);
    const t = await platform.create(moduleWith({ secret: SECRET, store, storeTimeout: 5000 }));
    await t.app.listen(0, '127.0.0.1');
    const pending = request(t.server).get('/count').then((res) => res);
    await store.writeStarted;
    expect(store.finishedWrites).toBe(0);

    let closedAfterWrites = -1;
    const closing = t.app.close().then(() => (closedAfterWrites = store.finishedWrites));
    const res = await pending;
    await closing;

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ visits: 1 });
    const [cookie] = setCookies(res.headers);
    expect(cookie?.name).toBe('sid');
    const id = cookie.value.split('.')[0];
    expect(store.inner.get(id)?.data).toEqual({ visits: '1' });
    // close() resolved only once the write was done.
    expect(closedAfterWrites).toBe(1);
  });
});
