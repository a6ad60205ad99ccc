// npm run bench:store-cost (node --expose-gc bench/store-cost.mjs): what one session costs each store.
//
// Bytes per session for a typical session (about 200 bytes of JSON) and for a signed-in session that
// holds nothing but its user id: Redis `MEMORY USAGE` (this library's hash beside connect-redis's JSON
// string with express-session's cookie object, and beside the same record as one JSON string, all in
// one throw-away Redis), PostgreSQL table + indexes per row, FileStore bytes on disk, MemoryStore heap.
// Then the store round trips of one `/read` and one `/hit` (Redis: MONITOR, commands run by scripts
// left out; PostgreSQL: pg_stat_statements), for nest-sessions and for express-session + connect-redis.
// Sizes are exact and repeatable; nothing here is a timing except the string-patch comparison.
// Environment: BENCH_COST_SESSIONS (10000) sessions per size figure.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  const child = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

const { distUrl, ensureBenchDeps, env, fmt, machine, saveRaw, writeSection } = await import('./lib.mjs');
const { startPostgres, startRedis, stopServices } = await import('./services.mjs');
ensureBenchDeps();
const { Redis } = await import('ioredis');
const pg = (await import('pg')).default;
const { MemoryStore, FileStore } = await import(distUrl('index.js'));
const { RedisStore } = await import(distUrl('stores/redis.store.js'));
const { PostgresStore } = await import(distUrl('stores/postgres.store.js'));
const expressSession = (await import('express-session')).default;
const { RedisStore: ConnectRedisStore } = await import('connect-redis');
const { createClient } = await import('redis');

const N = env('BENCH_COST_SESSIONS', 10_000);
const HOUR = 3_600_000;

// The two sessions, as a handler would set them.
const SESSIONS = {
  typical: {
    userId: 'u-1234567890',
    name: 'Ada Lovelace',
    email: 'ada@example.com',
    role: 'editor',
    locale: 'en-GB',
    theme: 'dark',
    cart: [{ sku: 'A-100', qty: 2 }, { sku: 'B-220', qty: 1 }],
    visits: 7,
  },
  'signed-in': { userId: 'u-1234567890' },
  // Values over 64 bytes (Redis's hash-max-listpack-value): the hash is kept as a hash table instead.
  large: {
    userId: 'u-1234567890',
    name: 'Ada Lovelace',
    email: 'ada@example.com',
    roles: ['editor', 'reviewer', 'billing-admin', 'support'],
    cart: Array.from({ length: 6 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: i + 1, price: 1999 + i })),
    recent: Array.from({ length: 5 }, (_, i) => `/products/category-${i}/item-${1000 + i}`),
    preferences: { theme: 'dark', locale: 'en-GB', currency: 'GBP', newsletter: true, density: 'compact' },
    visits: 7,
  },
};
const jsonBytes = (value) => Buffer.byteLength(JSON.stringify(value));

/** The store record nest-sessions writes for `data`: each value as its JSON text. */
function record(data) {
  return {
    data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, JSON.stringify(value)])),
    meta: { createdAt: Date.now() },
    expiresAt: Date.now() + HOUR,
  };
}
/** Ids as each library makes them: nest-sessions 32 random bytes as base64url (43 characters), express-session uid-safe(24) (32 characters). */
const ourId = (i) => `${String(i).padStart(8, '0')}${'x'.repeat(35)}`;
const theirId = (i) => `${String(i).padStart(8, '0')}${'y'.repeat(24)}`;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

// ------------------------------------------------------------------------- Redis memory

async function redisMemory(redisUrl) {
  const client = new Redis(redisUrl);
  const ours = new RedisStore({ client, prefix: 'sess:' });
  const node = createClient({ url: redisUrl });
  await node.connect();
  const theirs = new ConnectRedisStore({ client: node, prefix: 'sess:' });
  const cookie = new expressSession.Cookie({ maxAge: 24 * HOUR, httpOnly: true, secure: true, sameSite: 'lax', path: '/' });
  const out = {};
  try {
    for (const [name, data] of Object.entries(SESSIONS)) {
      await client.flushall();
      const usage = async (key) => Number(await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
      const rows = {};
      // nest-sessions: one hash per session.
      for (let i = 0; i < N; i++) await ours.set(ourId(i), record(data));
      rows.ours = { bytes: median(await Promise.all(Array.from({ length: 50 }, (_, i) => usage(`sess:${ourId(i * 7)}`)))), encoding: await client.object('ENCODING', `sess:${ourId(0)}`) };
      // The same hashes with Redis keeping hashes of values up to 1 KiB as listpacks (a server setting).
      await client.config('SET', 'hash-max-listpack-value', '1024');
      for (let i = 0; i < 50; i++) await ours.set(ourId(i * 7), record(data));
      rows.oursListpack = { bytes: median(await Promise.all(Array.from({ length: 50 }, (_, i) => usage(`sess:${ourId(i * 7)}`)))), encoding: await client.object('ENCODING', `sess:${ourId(0)}`) };
      await client.config('SET', 'hash-max-listpack-value', '64');
      // connect-redis: one JSON string holding express-session's cookie and the data.
      await new Promise((resolve, reject) => {
        let left = N;
        for (let i = 0; i < N; i++) theirs.set(theirId(i), { cookie, ...data }, (err) => (err ? reject(err) : --left === 0 && resolve()));
      });
      rows.connectRedis = { bytes: median(await Promise.all(Array.from({ length: 50 }, (_, i) => usage(`sess:${theirId(i * 7)}`)))), encoding: await client.object('ENCODING', `sess:${theirId(0)}`), value: Buffer.byteLength(await client.get(`sess:${theirId(0)}`)) };
      // The same record as nest-sessions' hash holds, as one JSON string with an expiry.
      const rec = record(data);
      const text = JSON.stringify({ data: rec.data, meta: rec.meta, expiresAt: rec.expiresAt });
      for (let i = 0; i < N; i++) await client.set(`str:${ourId(i)}`, text, 'PXAT', rec.expiresAt);
      rows.string = { bytes: median(await Promise.all(Array.from({ length: 50 }, (_, i) => usage(`str:${ourId(i * 7)}`)))), encoding: await client.object('ENCODING', `str:${ourId(0)}`), value: Buffer.byteLength(text) };
      // used_memory per session, for all N of each: what the allocator really holds, overheads of the keyspace included.
      await client.flushall();
      const before = await usedMemory(client);
      for (let i = 0; i < N; i++) await ours.set(ourId(i), record(data));
      const afterOurs = await usedMemory(client);
      await client.flushall();
      const before2 = await usedMemory(client);
      await new Promise((resolve, reject) => {
        let left = N;
        for (let i = 0; i < N; i++) theirs.set(theirId(i), { cookie, ...data }, (err) => (err ? reject(err) : --left === 0 && resolve()));
      });
      const afterTheirs = await usedMemory(client);
      rows.ours.usedPerSession = (afterOurs - before) / N;
      rows.connectRedis.usedPerSession = (afterTheirs - before2) / N;
      out[name] = { json: jsonBytes(data), ...rows };
    }
    out.patch = await stringPatchCost(client, ours);
  } finally {
    await client.flushall();
    client.disconnect();
    await node.quit().catch(() => {});
  }
  return out;
}

async function usedMemory(client) {
  const info = await client.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)[1]);
}

/**
 * What a patch would cost if a session were one JSON string: a Lua script that decodes it, changes
 * one key and encodes it again, beside the store's own hash patch. Median µs over loopback.
 */
async function stringPatchCost(client, ours) {
  const stringPatch = `
local text = redis.call('GET', KEYS[1])
if not text then return 0 end
local rec = cjson.decode(text)
rec.data[ARGV[1]] = ARGV[2]
rec.expiresAt = tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(rec), 'PXAT', ARGV[3])
return 1`;
  const rec = record(SESSIONS.typical);
  await ours.set('patch-probe', rec);
  await client.set('str:patch-probe', JSON.stringify({ data: rec.data, meta: rec.meta, expiresAt: rec.expiresAt }), 'PXAT', rec.expiresAt);
  const times = { hash: [], string: [] };
  for (let i = 0; i < 4000; i++) {
    const expiresAt = Date.now() + HOUR;
    const start = process.hrtime.bigint();
    if (i % 2 === 0) await ours.patch('patch-probe', { set: { visits: String(i) }, unset: [], flash: { set: {}, unset: [] }, expiresAt });
    else await client.eval(stringPatch, 1, 'str:patch-probe', 'visits', String(i), expiresAt);
    const micros = Number(process.hrtime.bigint() - start) / 1000;
    if (i >= 400) times[i % 2 === 0 ? 'hash' : 'string'].push(micros);
  }
  return { hashUs: median(times.hash), stringUs: median(times.string) };
}

// ------------------------------------------------------------------------- PostgreSQL, files, memory

async function postgresBytes(connectionString) {
  const pool = new pg.Pool({ connectionString, max: 4 });
  const out = {};
  try {
    for (const [name, data] of Object.entries(SESSIONS)) {
      const table = `cost_${name.replace('-', '_')}`;
      const store = new PostgresStore({ pool, tableName: table, sweepInterval: 0 });
      for (let i = 0; i < N; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => store.set(ourId(i + k), record(data))));
      await pool.query(`VACUUM ANALYZE ${table}`);
      const { rows } = await pool.query(
        `SELECT pg_total_relation_size($1) AS total, pg_relation_size($1) AS heap, pg_indexes_size($1) AS indexes,
                (SELECT avg(pg_column_size(t.*)) FROM ${table} t) AS tuple
         FROM ${table} LIMIT 1`,
        [table],
      );
      const r = rows[0];
      out[name] = { perRow: Number(r.total) / N, heapPerRow: Number(r.heap) / N, indexesPerRow: Number(r.indexes) / N, tuple: Number(r.tuple) };
      store.close();
    }
  } finally {
    await pool.end();
  }
  return out;
}

async function fileBytes() {
  const out = {};
  for (const [name, data] of Object.entries(SESSIONS)) {
    const dir = mkdtempSync(join(tmpdir(), 'bench-cost-files-'));
    try {
      const store = new FileStore({ directory: dir, sweepInterval: 0, fsync: false });
      for (let i = 0; i < N; i += 100) await Promise.all(Array.from({ length: 100 }, (_, k) => store.set(ourId(i + k), record(data))));
      await store.close();
      let apparent = 0;
      let allocated = 0;
      const files = readdirSync(dir);
      for (const file of files) {
        const st = statSync(join(dir, file));
        apparent += st.size;
        allocated += st.blocks * 512;
      }
      out[name] = { files: files.length, apparent: apparent / files.length, onDisk: allocated / files.length, blockSize: statfsSync(dir).bsize, directory: statSync(dir).blocks * 512 };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

async function heap() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

async function memoryBytes() {
  const out = {};
  for (const [name, data] of Object.entries(SESSIONS)) {
    const figures = [];
    for (let round = 0; round < 3; round++) {
      const store = new MemoryStore({ maxSessions: N, sweepInterval: 0 });
      // Records built before the first reading, as a request builds them: the store's own cost is measured.
      const empty = await heap();
      for (let i = 0; i < N; i++) await store.set(ourId(i), record(data));
      const full = await heap();
      figures.push((full - empty) / N);
      store.close();
    }
    out[name] = { perSession: median(figures), rounds: figures };
  }
  return out;
}

// ------------------------------------------------------------------------- round trips per request

async function roundTrips(redisUrl, pgUrl) {
  process.env.BENCH_REDIS_URL = redisUrl;
  process.env.BENCH_PG_URL = pgUrl;
  const { VARIANTS } = await import('./apps.mjs');
  const monitorClient = new Redis(redisUrl);
  const pool = new pg.Pool({ connectionString: pgUrl, max: 1 });
  await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const out = {};
  try {
    for (const variant of ['express/ns-redis', 'express/connect-redis', 'express/ns-postgres']) {
      const { app, cleanup } = await VARIANTS[variant].start();
      await app.listen(0, '127.0.0.1');
      const base = `http://127.0.0.1:${app.getHttpServer().address().port}`;
      try {
        const first = await fetch(`${base}/hit`);
        const cookie = first.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
        const counts = {};
        for (const route of ['read', 'hit']) {
          await fetch(`${base}/${route}`, { headers: { cookie } }); // warm (table creation, script loading)
          const calls = variant.includes('postgres') ? await countPostgres(pool, () => requests(base, route, cookie)) : await countRedis(monitorClient, () => requests(base, route, cookie));
          counts[route] = calls;
        }
        out[variant] = counts;
      } finally {
        await app.close();
        await cleanup();
      }
    }
  } finally {
    monitorClient.disconnect();
    await pool.end();
  }
  return out;
}

const REQUESTS = 100;
async function requests(base, route, cookie) {
  for (let i = 0; i < REQUESTS; i++) {
    const res = await fetch(`${base}/${route}`, { headers: { cookie } });
    if (res.status !== 200) throw new Error(`/${route} answered ${res.status}`);
    await res.arrayBuffer();
  }
}

/** Commands per request seen by MONITOR, those run inside scripts left out; { perRequest, commands }. */
async function countRedis(client, run) {
  const monitor = await client.monitor();
  const commands = {};
  let total = 0;
  monitor.on('monitor', (_time, args, source) => {
    if (String(source).includes('lua')) return;
    const name = String(args[0]).toLowerCase();
    if (name === 'info' || name === 'ping') return;
    commands[name] = (commands[name] ?? 0) + 1;
    total++;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await run();
  await new Promise((resolve) => setTimeout(resolve, 200));
  monitor.disconnect();
  return { perRequest: total / REQUESTS, commands: Object.fromEntries(Object.entries(commands).map(([k, v]) => [k, v / REQUESTS])) };
}

/** Statements per request from pg_stat_statements (the bench's own queries left out). */
async function countPostgres(pool, run) {
  await pool.query('SELECT pg_stat_statements_reset()');
  await run();
  const { rows } = await pool.query(`SELECT query, calls FROM pg_stat_statements WHERE query ILIKE '%bench_sessions_%' AND query NOT ILIKE '%pg_stat_statements%'`);
  const commands = {};
  let total = 0;
  for (const row of rows) {
    const name = row.query.trim().split(/\s+/)[0].toLowerCase();
    commands[name] = (commands[name] ?? 0) + Number(row.calls) / REQUESTS;
    total += Number(row.calls);
  }
  return { perRequest: total / REQUESTS, commands };
}

// ------------------------------------------------------------------------- run and report

const results = { sessions: N };
try {
  console.log('starting a throw-away Redis and PostgreSQL');
  const [redis, postgres] = await Promise.all([startRedis(), startPostgres({ shared_preload_libraries: 'pg_stat_statements' })]);
  console.log('Redis memory…');
  results.redis = await redisMemory(redis.url);
  console.log('PostgreSQL…');
  results.postgres = await postgresBytes(postgres.connectionString);
  console.log('FileStore…');
  results.file = await fileBytes();
  console.log('MemoryStore…');
  results.memory = await memoryBytes();
  console.log('round trips…');
  results.roundTrips = await roundTrips(redis.url, postgres.connectionString);
  results.redisVersion = await (async () => {
    const c = new Redis(redis.url);
    const info = await c.info('server');
    c.disconnect();
    return /redis_version:(\S+)/.exec(info)[1];
  })();
  results.postgresVersion = await (async () => {
    const p = new pg.Pool({ connectionString: postgres.connectionString, max: 1 });
    const v = (await p.query('SHOW server_version')).rows[0].server_version;
    await p.end();
    return v;
  })();
} finally {
  await stopServices();
}
const raw = saveRaw('store-cost', results);

const b = (v) => fmt.int(v);
const r = results.redis;
const lines = [
  '## What a session costs the store (`npm run bench:store-cost`)',
  '',
  `${new Date().toISOString().slice(0, 10)}, ${machine()}, Node ${process.version}, Redis ${results.redisVersion}, PostgreSQL ${results.postgresVersion}, ` +
    `${fmt.int(N)} sessions per figure. Sizes are exact (no timing noise). Raw figures: \`${raw.slice(raw.indexOf('bench/'))}\`.`,
  '',
  `The sessions: **typical**, ${Object.keys(SESSIONS.typical).length} keys (user id, name, e-mail, role, locale, theme, a two-line cart, a counter), ${r.typical.json} bytes of JSON; ` +
    `**signed-in**, a user id alone (${r['signed-in'].json} bytes of JSON); **large**, ${Object.keys(SESSIONS.large).length} keys, ${r.large.json} bytes of JSON, five values over Redis's 64-byte \`hash-max-listpack-value\`. Keys: \`sess:\` and the id (43 characters for nest-sessions, 32 for express-session).`,
  '',
  '| bytes per session | typical | signed-in | large |',
  '|---|---|---|---|',
  `| Redis \`MEMORY USAGE\`: nest-sessions (one hash, ${r.typical.ours.encoding}) | ${b(r.typical.ours.bytes)} | ${b(r['signed-in'].ours.bytes)} | ${b(r.large.ours.bytes)} (${r.large.ours.encoding}) |`,
  `| … the same with \`hash-max-listpack-value 1024\` in redis.conf (default 64) | ${b(r.typical.oursListpack.bytes)} | ${b(r['signed-in'].oursListpack.bytes)} | ${b(r.large.oursListpack.bytes)} (${r.large.oursListpack.encoding}) |`,
  `| Redis \`MEMORY USAGE\`: connect-redis 10 + express-session (one JSON string with the cookie object, ${r.typical.connectRedis.value} / ${r['signed-in'].connectRedis.value} / ${r.large.connectRedis.value} bytes) | ${b(r.typical.connectRedis.bytes)} | ${b(r['signed-in'].connectRedis.bytes)} | ${b(r.large.connectRedis.bytes)} |`,
  `| Redis \`MEMORY USAGE\`: nest-sessions' record as one JSON string (${r.typical.string.value} / ${r['signed-in'].string.value} / ${r.large.string.value} bytes), not what the store writes | ${b(r.typical.string.bytes)} | ${b(r['signed-in'].string.bytes)} | ${b(r.large.string.bytes)} |`,
  `| Redis \`used_memory\` growth / sessions: nest-sessions | ${b(r.typical.ours.usedPerSession)} | ${b(r['signed-in'].ours.usedPerSession)} | ${b(r.large.ours.usedPerSession)} |`,
  `| Redis \`used_memory\` growth / sessions: connect-redis | ${b(r.typical.connectRedis.usedPerSession)} | ${b(r['signed-in'].connectRedis.usedPerSession)} | ${b(r.large.connectRedis.usedPerSession)} |`,
  `| PostgreSQL \`pg_total_relation_size\` / rows (heap + TOAST + both indexes) | ${b(results.postgres.typical.perRow)} | ${b(results.postgres['signed-in'].perRow)} | ${b(results.postgres.large.perRow)} |`,
  `| … of which the heap / the indexes (primary key, \`expires_at\`) | ${b(results.postgres.typical.heapPerRow)} / ${b(results.postgres.typical.indexesPerRow)} | ${b(results.postgres['signed-in'].heapPerRow)} / ${b(results.postgres['signed-in'].indexesPerRow)} | ${b(results.postgres.large.heapPerRow)} / ${b(results.postgres.large.indexesPerRow)} |`,
  `| FileStore on disk (blocks allocated; file size in brackets; ${results.file.typical.blockSize}-byte blocks, ${process.platform} ${tmpdir()}) | ${b(results.file.typical.onDisk)} (${b(results.file.typical.apparent)}) | ${b(results.file['signed-in'].onDisk)} (${b(results.file['signed-in'].apparent)}) | ${b(results.file.large.onDisk)} (${b(results.file.large.apparent)}) |`,
  `| MemoryStore heap (\`process.memoryUsage().heapUsed\` after GC, median of 3) | ${b(results.memory.typical.perSession)} | ${b(results.memory['signed-in'].perSession)} | ${b(results.memory.large.perSession)} |`,
  '',
  `A patch of one key on the typical session, median µs over loopback: the store's hash script ${fmt.fixed(r.patch.hashUs, 0)}, ` +
    `a Lua script that decodes, changes and re-encodes a JSON string ${fmt.fixed(r.patch.stringUs, 0)} (timings: noisy on a shared machine).`,
  '',
  '| store round trips per request | `/read` | `/hit` |',
  '|---|---|---|',
  ...Object.entries(results.roundTrips).map(([variant, c]) => {
    const show = (x) => `${fmt.fixed(x.perRequest, 2)} (${Object.entries(x.commands).map(([k, v]) => `${k} ${fmt.fixed(v, 2)}`).join(', ')})`;
    return `| ${variant} | ${show(c.read)} | ${show(c.hit)} |`;
  }),
  '',
  'Round trips: Redis commands seen by `MONITOR` (those a script runs left out), PostgreSQL statements counted by `pg_stat_statements`, over 100 requests on an existing session.',
  '',
  'Command: `npm run bench:store-cost` (`BENCH_COST_SESSIONS` sets the number of sessions per figure).',
];
writeSection('store-cost', lines.join('\n'));
console.log(`\n${lines.join('\n')}\n`);
