import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SessionConfigError, SessionStoreError } from '../../src/session/session.errors.js';
import type { SessionPatch, SessionRecord } from '../../src/stores/session-store.interface.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { defineSessionStoreTests } from '../../src/testing/index.js';
import { postgresUrl } from '../support/services.js';

const CONNECTION = postgresUrl();
// Every table and schema this file creates starts with this run's unique prefix, and is dropped after.
const run = `nest_sessions_${randomBytes(4).toString('hex')}`;
let pool: pg.Pool;
let tables = 0;
const newTable = () => `${run}_${++tables}`;

const hour = () => Date.now() + 3_600_000;
const record = (data: Record<string, string>, expiresAt = hour()): SessionRecord => ({ data, meta: { createdAt: Date.now() }, expiresAt });
const patch = (set: Record<string, string>, expiresAt = hour()): SessionPatch => ({ set, unset: [], flash: { set: {}, unset: [] }, expiresAt });
const store = (options: Partial<ConstructorParameters<typeof PostgresStore>[0]> = {}) =>
  new PostgresStore({ pool, tableName: newTable(), sweepInterval: 0, ...options });
const count = async (table: string, schema = 'public') =>
  Number((await pool.query(`SELECT count(*) FROM "${schema}"."${table}"`)).rows[0].count);

/** Reports the rows each sweep batch run through `target` deleted; returns the undo. */
function countDeleted(target: pg.Pool, onBatch: (deleted: number) => void): () => void {
  const query = target.query;
  const run = query.bind(target) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
  target.query = (async (text: string, values?: unknown[]) => {
    const result = await run(text, values);
    if (text.includes('DELETE')) onBatch(Number((result.rows[0] as { deleted: string }).deleted));
    return result;
  }) as typeof query;
  return () => {
    target.query = query;
  };
}

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: CONNECTION, max: 20, connectionTimeoutMillis: 5000 });
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end();
    throw new Error(`these tests need PostgreSQL at ${CONNECTION}, started by test/support/global-setup.ts or given as DATABASE_URL (${(err as Error).message})`, { cause: err });
  }
});

afterAll(async () => {
  if (!pool || pool.ended) return;
  try {
    const { rows } = await pool.query<{ name: string }>(
      `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name FROM information_schema.tables WHERE table_name LIKE $1`,
      [`${run}%`],
    );
    for (const { name } of rows) await pool.query(`DROP TABLE IF EXISTS ${name}`);
    await pool.query(`DROP SCHEMA IF EXISTS "${run}" CASCADE`);
  } finally {
    await pool.end();
  }
});

// Each case gets a table of its own (created by the store on first use), so counting rows counts only its sessions.
const caseTables = new WeakMap<PostgresStore, string>();
defineSessionStoreTests(
  { describe, it },
  () => {
    const tableName = newTable();
    const caseStore = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    caseTables.set(caseStore, tableName);
    return caseStore;
  },
  {
    title: 'PostgresStore conformance',
    countSessions: (s) => count(caseTables.get(s)!),
    countIndexed: async (s) => Number((await pool.query(`SELECT count(*) FROM "${caseTables.get(s)!}" WHERE user_id IS NOT NULL`)).rows[0].count),
  },
);

describe('PostgresStore', () => {
  it('adds the user_id column and its index to a table made by the previous version, keeping its sessions', async () => {
    const tableName = newTable();
    await pool.query(`CREATE TABLE "${tableName}" (id text PRIMARY KEY, data jsonb NOT NULL, meta jsonb NOT NULL, expires_at bigint NOT NULL)`);
    await pool.query(`CREATE INDEX "${tableName}_expires_at_idx" ON "${tableName}" (expires_at)`);
    await pool.query(`INSERT INTO "${tableName}" VALUES ('old', '{"a":"1"}', $1, $2)`, [JSON.stringify({ createdAt: 1 }), hour()]);
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    expect(await s.get('old')).toMatchObject({ data: { a: '1' }, meta: { createdAt: 1 } });
    const columns = await pool.query(`SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [tableName]);
    expect(columns.rows.map((r) => r.column_name)).toEqual(['id', 'data', 'meta', 'expires_at', 'user_id']);
    const indexes = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE tablename = $1`, [tableName]);
    expect(indexes.rows.map((r) => r.indexdef)).toContainEqual(expect.stringMatching(/\(user_id\) WHERE \(user_id IS NOT NULL\)$/));
    await s.patch('old', { ...patch({}), user: { id: 'ada', lastSeenAt: 5 } });
    expect(await s.listByUser('ada')).toEqual([{ id: 'old', meta: { createdAt: 1, user: { id: 'ada', lastSeenAt: 5 } }, expiresAt: expect.any(Number) }]);
    // A second store (another instance starting) finds everything in place.
    const again = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    expect((await again.listByUser('ada')).map((e) => e.id)).toEqual(['old']);
  });

  it('starts beside a long reader of an up-to-date table without taking a lock that queues session queries', async () => {
    const tableName = newTable();
    const first = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    await first.set('kept', record({ a: '1' }));
    // A report, a dump or an idle transaction holds a read lock on the table.
    const reader = await pool.connect();
    try {
      await reader.query('BEGIN');
      await reader.query(`SELECT count(*) FROM "${tableName}"`);
      // Another instance starts; then the first one serves a request.
      const starting = new PostgresStore({ pool, tableName, sweepInterval: 0 });
      const outcome = await Promise.race([
        Promise.all([starting.get('kept'), first.set('next', record({ b: '2' }))]).then(() => 'served'),
        new Promise((done) => setTimeout(() => done('stalled'), 3000)),
      ]);
      expect(outcome).toBe('served');
    } finally {
      await reader.query('ROLLBACK').catch(() => undefined);
      reader.release();
    }
  });

  it('lists a user through the user_id index', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    await s.set('one', { ...record({}), meta: { createdAt: 1, user: { id: 'ada' } } });
    await pool.query(`SET enable_seqscan = off`);
    try {
      const plan = await pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT id, meta, expires_at FROM "${tableName}" WHERE user_id = 'ada' AND expires_at > 0`);
      expect(plan.rows.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Index Scan using "?[a-z0-9_]+_user_id_idx"?|Bitmap Index Scan on "?[a-z0-9_]+_user_id_idx"?/);
    } finally {
      await pool.query(`RESET enable_seqscan`);
    }
  });

  it('with createTable: false, a table without user_id answers a store error that gives the SQL to add it', async () => {
    const tableName = newTable();
    await pool.query(`CREATE TABLE "${tableName}" (id text PRIMARY KEY, data jsonb NOT NULL, meta jsonb NOT NULL, expires_at bigint NOT NULL)`);
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0, createTable: false });
    const failure = s.set('x', record({}));
    await expect(failure).rejects.toBeInstanceOf(SessionStoreError);
    await expect(s.listByUser('ada')).rejects.toThrow(/ADD COLUMN user_id text/);
  });

  it('creates its table and the expiry index on first use', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    expect(await s.get('nothing')).toBeUndefined();
    const columns = await pool.query(`SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [tableName]);
    expect(columns.rows).toEqual([
      { column_name: 'id', data_type: 'text', is_nullable: 'NO' },
      { column_name: 'data', data_type: 'jsonb', is_nullable: 'NO' },
      { column_name: 'meta', data_type: 'jsonb', is_nullable: 'NO' },
      { column_name: 'expires_at', data_type: 'bigint', is_nullable: 'NO' },
      { column_name: 'user_id', data_type: 'text', is_nullable: 'YES' },
    ]);
    const indexes = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE tablename = $1`, [tableName]);
    expect(indexes.rows.map((r) => r.indexdef)).toContainEqual(expect.stringMatching(/\(expires_at\)$/));
  });

  it('recreates a missing expiry index on an existing table', async () => {
    const tableName = newTable();
    await pool.query(`CREATE TABLE "${tableName}" (id text PRIMARY KEY, data jsonb NOT NULL, meta jsonb NOT NULL, expires_at bigint NOT NULL)`);
    await new PostgresStore({ pool, tableName, sweepInterval: 0 }).get('x');
    const indexes = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE tablename = $1`, [tableName]);
    expect(indexes.rows.map((r) => r.indexdef)).toContainEqual(expect.stringMatching(/\(expires_at\)$/));
  });

  it('creates the table once when many calls arrive together', async () => {
    const s = store();
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.set(`id${i}`, record({ i: String(i) }))));
    expect((await s.get('id7'))?.data).toEqual({ i: '7' });
  });

  it('tries again after a failed table creation instead of remembering the failure', async () => {
    const s = new PostgresStore({ pool, schemaName: run, tableName: newTable(), sweepInterval: 0 });
    const first = s.get('x');
    await expect(first).rejects.toBeInstanceOf(SessionStoreError);
    await expect(first).rejects.toThrow(/could not create table .*schema .* does not exist/);
    await pool.query(`CREATE SCHEMA "${run}"`);
    await s.set('x', record({ a: '1' }));
    expect((await s.get('x'))?.data).toEqual({ a: '1' });
  });

  it('with createTable: false, a missing table fails with an error that says what to do', async () => {
    const s = store({ createTable: false });
    const failure = s.get('x');
    await expect(failure).rejects.toBeInstanceOf(SessionStoreError);
    await expect(failure).rejects.toThrow(/table ".*" does not exist\. Create it .* or set createTable: true/);
  });

  it('round-trips each value as the exact JSON text it was given', async () => {
    const s = store();
    const data = Object.fromEntries([
      ['ordered', '{"b":1,"a":2}'], // jsonb would reorder these keys
      ['big', '12345678901234567890'], // and round this number
      ['float', '1.50'],
      ['nul', JSON.stringify('a\u0000b')], // and refuse this character in a string
      ['__proto__', '"proto"'],
      ['', '"empty key"'],
      ["it's; DROP TABLE x; --", '"hostile key"'],
    ]);
    const input: SessionRecord = { data, meta: { createdAt: 1, maxAge: 10, flash: { info: ['a', 'b'] } }, expiresAt: hour() };
    await s.set('exact', input);
    const output = await s.get('exact');
    expect(output).toEqual(input);
    expect(Object.keys(output!.data).sort()).toEqual(Object.keys(data).sort());
  });

  it('keeps every string a user can store: keys, flash keys, flash messages and the session name with NUL characters and lone surrogates', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    const echo = ['a\u0000b', 'x\ud83dy', '\udc00', { 'k\u0000': '\ud800' }]; // a flash echoing user input
    const input: SessionRecord = {
      data: { 'a\u0000b': '1', '\ud800': '2', '\u0001"a\\u0000b"': '3' },
      meta: { createdAt: 1, session: 'späť\u0000\ud83d', flash: { error: echo, 'k\u0000\udfff': ['m'] } },
      expiresAt: hour(),
    };
    await s.set('awkward', input);
    expect(await s.get('awkward')).toEqual(input);
    await s.patch('awkward', { ...patch({ 'b\u0000': '4' }, input.expiresAt), unset: ['\ud800'], flash: { set: { 'new\ud800': echo }, unset: ['k\u0000\udfff'] } });
    expect(await s.get('awkward')).toEqual({
      data: { 'a\u0000b': '1', '\u0001"a\\u0000b"': '3', 'b\u0000': '4' },
      meta: { createdAt: 1, session: 'späť\u0000\ud83d', flash: { error: echo, 'new\ud800': echo } },
      expiresAt: input.expiresAt,
    });
    const { rows } = await pool.query(`SELECT meta FROM "${tableName}"`);
    expect(rows[0].meta).toEqual({
      createdAt: 1,
      session: '\u0001"späť\\u0000\\ud83d"',
      flash: { error: JSON.stringify(echo), '\u0001"new\\ud800"': JSON.stringify(echo) },
    });
  });

  it('reads a row that holds no session of its own writing as no session, never throws', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    await s.get('create the table');
    const good = { data: { a: '1' }, meta: { createdAt: 1, flash: { info: '["x"]' } } };
    const insert = (data: unknown, meta: unknown) =>
      pool.query(`INSERT INTO "${tableName}" (id, data, meta, expires_at) VALUES ('row', $1::jsonb, $2::jsonb, $3) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, meta = EXCLUDED.meta`, [
        JSON.stringify(data),
        JSON.stringify(meta),
        hour(),
      ]);
    await insert(good.data, good.meta);
    expect((await s.get('row'))?.meta).toEqual({ createdAt: 1, flash: { info: ['x'] } });
    await insert(good.data, { createdAt: 1, flash: { info: ['x'] } }); // a row written before flash lists were kept as text
    expect((await s.get('row'))?.meta).toEqual({ createdAt: 1, flash: { info: ['x'] } });
    const garbage: [string, unknown, unknown][] = [
      ['data not an object', ['a'], good.meta],
      ['a data value that is not text', { a: 1 }, good.meta],
      ['meta not an object', good.data, 'meta'],
      ['createdAt missing', good.data, {}],
      ['createdAt not a number', good.data, { createdAt: '1' }],
      ['maxAge not a number', good.data, { createdAt: 1, maxAge: '1000' }],
      ['the session name not a string', good.data, { createdAt: 1, session: 7 }],
      ['flash not an object', good.data, { createdAt: 1, flash: ['x'] }],
      ['a flash list not JSON', good.data, { createdAt: 1, flash: { info: '["x"' } }],
      ['a flash list that is no list', good.data, { createdAt: 1, flash: { info: '{"0":"x"}' } }],
      ['a flash list of the wrong type', good.data, { createdAt: 1, flash: { info: 7 } }],
    ];
    for (const [what, data, meta] of garbage) {
      await insert(data, meta);
      await expect(s.get('row'), what).resolves.toBeUndefined();
    }
  });

  it('never returns an expired row', async () => {
    const s = store();
    await s.set('old', record({ a: '1' }, Date.now() - 1));
    expect(await s.get('old')).toBeUndefined();
  });

  it('set replaces the whole session', async () => {
    const s = store();
    await s.set('r', record({ a: '1', b: '2' }));
    await s.set('r', record({ c: '3' }));
    expect((await s.get('r'))?.data).toEqual({ c: '3' });
  });

  it('patch changes only its keys, and never brings back an unknown or expired session', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    await s.set('p', { data: { a: '1', b: '2', c: '3' }, meta: { createdAt: 9, session: 'prefs', flash: { info: ['x'], error: ['y'] } }, expiresAt: hour() });
    // Another request's flash and maxAge, written meanwhile: a patch must leave them.
    await pool.query(`UPDATE "${tableName}" SET meta = meta || '{"maxAge": 5}' || jsonb_build_object('flash', meta->'flash' || '{"late": "[1]"}')`);
    const expiresAt = hour() + 5;
    await s.patch('p', { set: { b: '"two"', d: '4' }, unset: ['c', 'absent'], flash: { set: { info: ['x', 'z'] }, unset: ['error'] }, expiresAt });
    expect(await s.get('p')).toEqual({ data: { a: '1', b: '"two"', d: '4' }, meta: { createdAt: 9, maxAge: 5, session: 'prefs', flash: { info: ['x', 'z'], late: [1] } }, expiresAt });
    await s.patch('p', { ...patch({}, expiresAt), maxAge: null, flash: { set: {}, unset: ['info', 'late'] } });
    expect(await s.get('p')).toEqual({ data: { a: '1', b: '"two"', d: '4' }, meta: { createdAt: 9, session: 'prefs' }, expiresAt });

    await s.patch('unknown', patch({ a: '1' }));
    await s.set('gone', record({ a: '1' }, Date.now() - 1));
    await s.patch('gone', patch({ a: '2' }));
    expect(await s.get('unknown')).toBeUndefined();
    expect(await s.get('gone')).toBeUndefined();
    expect(await count(tableName)).toBe(2); // 'p' and the expired 'gone', untouched
  });

  it('keeps every key when 50 patches of different keys run at once', async () => {
    const s = store();
    await s.set('c', record({ base: '0' }));
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => s.patch('c', patch({ [`k${i}`]: String(i) }))),
    );
    const data = (await s.get('c'))!.data;
    expect(Object.keys(data)).toHaveLength(51);
    for (let i = 0; i < 50; i++) expect(data[`k${i}`]).toBe(String(i));
  });

  it('touch moves the expiry of a live session only', async () => {
    const s = store();
    await s.set('t', record({ a: '1' }, Date.now() + 10_000));
    const later = hour() + 1;
    await s.touch('t', later);
    expect((await s.get('t'))?.expiresAt).toBe(later);
    await s.set('dead', record({ a: '1' }, Date.now() - 1));
    await s.touch('dead', later);
    expect(await s.get('dead')).toBeUndefined();
  });

  it('destroy deletes the row; an unknown id is fine', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    await s.set('d', record({ a: '1' }));
    await s.destroy('d');
    await s.destroy('never');
    expect(await count(tableName)).toBe(0);
  });

  it('reclaim() deletes expired rows and keeps live ones', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0 });
    await s.set('live', record({ a: '1' }));
    await s.set('dead1', record({ a: '1' }, Date.now() - 1000));
    await s.set('dead2', record({ a: '1' }, Date.now() - 1));
    expect(await count(tableName)).toBe(3);
    await s.reclaim();
    const { rows } = await pool.query(`SELECT id FROM "${tableName}"`);
    expect(rows).toEqual([{ id: 'live' }]);
  });

  it('reclaim() deletes in batches of sweepBatchSize, oldest expiry first, each batch its own statement', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0, sweepBatchSize: 3 });
    await s.set('live', record({ a: '1' }));
    const now = Date.now();
    await pool.query(
      `INSERT INTO "${tableName}" (id, data, meta, expires_at) SELECT 'dead' || g, '{}', '{"createdAt": 1}', $1::bigint - g FROM generate_series(1, 10) g`,
      [now],
    );
    const batches: number[] = [];
    const restore = countDeleted(pool, (deleted) => batches.push(deleted));
    try {
      await s.reclaim();
    } finally {
      restore();
    }
    // 10 expired rows, 3 a statement: 3 + 3 + 3 + 1, and the short batch ends the sweep.
    expect(batches).toEqual([3, 3, 3, 1]);
    expect((await pool.query(`SELECT id FROM "${tableName}"`)).rows).toEqual([{ id: 'live' }]);
  });

  it('a request holding an expired row does not block the sweep: the row is skipped and left for the next one', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 0, sweepBatchSize: 2 });
    for (let i = 0; i < 5; i++) await s.set(`dead${i}`, record({ a: '1' }, Date.now() - 1000 + i));
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT id FROM "${tableName}" WHERE id = 'dead0' FOR UPDATE`);
      const started = Date.now();
      await s.reclaim();
      expect(Date.now() - started).toBeLessThan(2000); // never waited for the lock (held until the COMMIT below)
      expect((await pool.query(`SELECT id FROM "${tableName}"`)).rows).toEqual([{ id: 'dead0' }]);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    await s.reclaim();
    expect(await count(tableName)).toBe(0);
  });

  it('several stores sweeping one table at once each delete batches of their own, and together delete every expired row', async () => {
    const tableName = newTable();
    const first = new PostgresStore({ pool, tableName, sweepInterval: 0, sweepBatchSize: 5 });
    await first.set('live', record({ a: '1' }));
    await pool.query(
      `INSERT INTO "${tableName}" (id, data, meta, expires_at) SELECT 'dead' || g, '{}', '{"createdAt": 1}', $1::bigint - g FROM generate_series(1, 300) g`,
      [Date.now()],
    );
    // Each store on a pool of its own, as in separate app instances.
    const pools = Array.from({ length: 3 }, () => new pg.Pool({ connectionString: CONNECTION, max: 1 }));
    const deleted = pools.map(() => 0);
    try {
      pools.forEach((own, i) => countDeleted(own, (n) => (deleted[i] += n)));
      await Promise.all(pools.map((own) => new PostgresStore({ pool: own, tableName, sweepInterval: 0, sweepBatchSize: 5, createTable: false }).reclaim()));
    } finally {
      await Promise.all(pools.map((own) => own.end()));
    }
    expect((await pool.query(`SELECT id FROM "${tableName}"`)).rows).toEqual([{ id: 'live' }]);
    expect(deleted.reduce((a, b) => a + b, 0)).toBe(300); // no row deleted twice, none missed
    expect(deleted.filter((n) => n > 0).length, `rows deleted per store: ${deleted.join(', ')}`).toBeGreaterThan(1);
  });

  it('close() stops a sweep under way after its current batch', async () => {
    const tableName = newTable();
    const s = new PostgresStore({ pool, tableName, sweepInterval: 10, sweepBatchSize: 1 });
    await s.get('x');
    await pool.query(
      `INSERT INTO "${tableName}" (id, data, meta, expires_at) SELECT 'dead' || g, '{}', '{"createdAt": 1}', $1::bigint - g FROM generate_series(1, 2000) g`,
      [Date.now()],
    );
    await vi.waitFor(async () => expect(await count(tableName)).toBeLessThan(2000), { timeout: 5000, interval: 10 });
    s.close();
    await new Promise((resolve) => setTimeout(resolve, 500)); // the batch in flight at close() ends
    const left = await count(tableName);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(left).toBeGreaterThan(0);
    expect(await count(tableName)).toBe(left);
  });

  it('works in a named schema', async () => {
    await pool.query(`CREATE SCHEMA IF NOT EXISTS "${run}"`);
    const tableName = newTable();
    const s = new PostgresStore({ pool, schemaName: run, tableName, sweepInterval: 0 });
    await s.set('x', record({ a: '1' }));
    expect(await count(tableName, run)).toBe(1);
  });

  it('refuses hostile or invalid identifiers and options with a SessionConfigError naming the option', () => {
    const bad = (options: unknown, message: RegExp) => {
      const attempt = () => new PostgresStore(options as never);
      expect(attempt).toThrow(SessionConfigError);
      expect(attempt).toThrow(message);
    };
    for (const tableName of ['sessions; DROP TABLE users', 'a"b', 'a.b', '', '1abc', 'x y', 'x'.repeat(49), 'sessions\u0000']) {
      bad({ pool, tableName }, /`tableName` must be/);
    }
    for (const schemaName of ['public"; --', 'a b', '']) bad({ pool, schemaName }, /`schemaName` must be/);
    bad(undefined, /options object/);
    bad({}, /`pool` is required/);
    bad({ pool: {} }, /`pool` is required/);
    bad({ pool, createTable: 'yes' }, /`createTable` must be/);
    for (const sweepInterval of [-1, Number.NaN, Infinity, 2 ** 31]) bad({ pool, sweepInterval }, /`sweepInterval` must be/);
    for (const sweepBatchSize of [0, -1, 1.5, Number.NaN, '100', 100_001]) bad({ pool, sweepBatchSize }, /`sweepBatchSize` must be/);
  });

  it('sweeps expired rows on its own, on an unref\'d timer that close() stops', async () => {
    const setInterval = vi.spyOn(globalThis, 'setInterval');
    const clearInterval = vi.spyOn(globalThis, 'clearInterval');
    try {
      const tableName = newTable();
      const s = new PostgresStore({ pool, tableName, sweepInterval: 50 });
      const timer = setInterval.mock.results.at(-1)!.value as NodeJS.Timeout;
      expect(timer.hasRef()).toBe(false); // the timer alone never keeps the process alive
      await s.set('dead', record({ a: '1' }, Date.now() - 1));
      await vi.waitFor(async () => expect(await count(tableName)).toBe(0), { timeout: 5000, interval: 50 });
      s.close();
      expect(clearInterval).toHaveBeenCalledWith(timer);
    } finally {
      setInterval.mockRestore();
      clearInterval.mockRestore();
    }
  });

  it('a failing sweep is logged, never thrown', async () => {
    const failing = { query: () => Promise.reject(new Error('database is down')), connect: () => Promise.reject(new Error('database is down')) };
    const logged = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    try {
      const s = new PostgresStore({ pool: failing as never, createTable: false, sweepInterval: 20 });
      await vi.waitFor(() => expect(logged).toHaveBeenCalledWith(expect.stringMatching(/Deleting expired sessions failed.*database is down/)), { timeout: 2000 });
      s.close();
    } finally {
      logged.mockRestore();
    }
  });

  it('close() does not end the pool it was given', async () => {
    const s = store();
    await s.set('x', record({ a: '1' }));
    s.close();
    expect(pool.ended).toBe(false);
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});
