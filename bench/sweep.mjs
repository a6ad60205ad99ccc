// npm run bench:sweep: the expired-session sweeps at scale, under a load on the live sessions.
//
// PostgreSQL: a throw-away cluster, a table of 1,000,000 expired sessions and 10,000 live ones; then
// in each round: load alone (the baseline), load while one store sweeps, load while three stores
// sweep at once; request p99 of each, how long the sweep took, and what each sweeper deleted. Also
// the plan of the read by id (an index scan, never a table scan) and of a sweep batch.
// FileStore: 100,000 expired files and 1,000 live ones; the longest event-loop delay
// (perf_hooks.monitorEventLoopDelay) and the p99 of reads of live sessions, without and during the sweep.
//
// Environment: BENCH_SWEEP_ROUNDS (3), BENCH_SWEEP_EXPIRED (1000000), BENCH_SWEEP_LIVE (10000),
// BENCH_SWEEP_FILES (100000), BENCH_SWEEP_CONCURRENCY (16), BENCH_SWEEP_BASELINE_MS (5000),
// BENCH_SWEEP_ONLY (pg | file), BENCH_WRITE=1 to write RESULTS.md even for a smaller run.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { distUrl, ensureBenchDeps, env, fmt, loadAverage, machine, saveRaw, writeSection } from './lib.mjs';
import { startPostgres, stopServices } from './services.mjs';

ensureBenchDeps();
const pg = (await import('pg')).default;
const { PostgresStore } = await import(distUrl('stores/postgres.store.js'));
const { FileStore } = await import(distUrl('index.js'));

const ROUNDS = env('BENCH_SWEEP_ROUNDS', 3);
const EXPIRED = env('BENCH_SWEEP_EXPIRED', 1_000_000);
const LIVE = env('BENCH_SWEEP_LIVE', 10_000);
const FILES = env('BENCH_SWEEP_FILES', 100_000);
const LIVE_FILES = 1_000;
const CONCURRENCY = env('BENCH_SWEEP_CONCURRENCY', 16);
const BASELINE_MS = env('BENCH_SWEEP_BASELINE_MS', 5000);
const ONLY = process.env.BENCH_SWEEP_ONLY;
const SWEEPERS = 3;
const HOUR = 3_600_000;
// About 200 bytes of session data, as each value's JSON text (how the stores keep it).
const DATA = { userId: '"u-1234567890"', role: '"editor"', cart: JSON.stringify(JSON.stringify([{ sku: 'A-100', qty: 2 }, { sku: 'B-220', qty: 1 }])), theme: '"dark"', locale: '"en-GB"', visits: '7' };

const quantile = (sorted, q) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
const median = (values) => quantile([...values].sort((a, b) => a - b), 0.5);
const spread = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return `${fmt.fixed(median(values), 2)} (${fmt.fixed(sorted[0], 2)}–${fmt.fixed(sorted.at(-1), 2)})`;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** CONCURRENCY workers each running `request()` in a loop until stop(); latencies in ms. */
function runLoad(request) {
  const latencies = [];
  let running = true;
  let failures = 0;
  const workers = Array.from({ length: CONCURRENCY }, async (_, w) => {
    for (let k = w; running; k += CONCURRENCY) {
      const start = performance.now();
      try {
        await request(k);
      } catch {
        failures++;
      }
      latencies.push(performance.now() - start);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      const sorted = latencies.sort((a, b) => a - b);
      return { requests: sorted.length, failures, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: sorted.at(-1) };
    },
  };
}

// ---------------------------------------------------------------- PostgreSQL

async function postgresBench() {
  console.log(`PostgreSQL: starting a throw-away cluster`);
  const server = await startPostgres();
  const pool = new pg.Pool({ connectionString: server.connectionString, max: 20 });
  const table = 'bench_sessions';
  const store = new PostgresStore({ pool, tableName: table, sweepInterval: 0 });
  const now = Date.now();
  const patch = (k) => ({ set: { visits: String(k) }, unset: [], flash: { set: {}, unset: [] }, expiresAt: Date.now() + HOUR });
  // A request: read the session by id; every other one also writes it (like /hit), the rest only read (like /read).
  const request = async (k) => {
    const id = `live-${(k * 7919) % LIVE}`;
    const record = await store.get(id);
    if (record === undefined) throw new Error(`live session ${id} missing`);
    if (k % 2 === 0) await store.patch(id, patch(k));
  };
  try {
    await store.get('warm'); // creates the table and its index
    const data = JSON.stringify(Object.fromEntries(Object.entries(DATA)));
    const fill = async () => {
      const started = Date.now();
      await pool.query(`TRUNCATE ${table}`);
      // Expired rows spread over the last 30 days, in random order on disk, as real sessions would be.
      await pool.query(
        `INSERT INTO ${table} (id, data, meta, expires_at)
         SELECT 'gone-' || g, $1::jsonb, jsonb_build_object('createdAt', $2::bigint - 2592000000), $2::bigint - 1000 - (random() * 2592000000)::bigint
         FROM generate_series(1, $3) g`,
        [data, now, EXPIRED],
      );
      await pool.query(
        `INSERT INTO ${table} (id, data, meta, expires_at)
         SELECT 'live-' || g, $1::jsonb, jsonb_build_object('createdAt', $2::bigint), $2::bigint + 86400000 + g
         FROM generate_series(0, $3 - 1) g`,
        [data, now, LIVE],
      );
      await pool.query(`VACUUM ANALYZE ${table}`);
      return Date.now() - started;
    };

    const fillMs = await fill();
    console.log(`  filled ${fmt.int(EXPIRED)} expired + ${fmt.int(LIVE)} live rows in ${fmt.int(fillMs)} ms`);
    const plan = async (text, values) =>
      (await pool.query(`EXPLAIN ${text}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
    const readPlan = await plan(`SELECT data, meta, expires_at FROM ${table} WHERE id = $1 AND expires_at > $2`, ['live-1', Date.now()]);
    const batchPlan = await plan(
      `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE expires_at >= $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED)) AND expires_at <= $2`,
      [Number.MIN_SAFE_INTEGER, Date.now(), 1000],
    );
    console.log(`  read by id:\n${readPlan.replace(/^/gm, '    ')}\n  a sweep batch:\n${batchPlan.replace(/^/gm, '    ')}`);

    const rounds = [];
    for (let round = 1; round <= ROUNDS; round++) {
      if (round > 1) await fill();
      const figures = { round };
      // 1. The load alone, on the table full of expired rows.
      let load = runLoad(request);
      await sleep(BASELINE_MS);
      figures.baseline = await load.stop();
      // 2. The load while one store sweeps.
      load = runLoad(request);
      await sleep(200);
      let started = performance.now();
      await new PostgresStore({ pool, tableName: table, sweepInterval: 0, createTable: false }).reclaim();
      figures.sweepMs = performance.now() - started;
      figures.sweep = await load.stop();
      figures.left = Number((await pool.query(`SELECT count(*) FROM ${table} WHERE expires_at <= $1`, [now])).rows[0].count);
      // 3. Refill, then the load while three stores (three app instances, each its own pool) sweep at once.
      await fill();
      const sweepers = Array.from({ length: SWEEPERS }, () => countingPool(server.connectionString));
      load = runLoad(request);
      await sleep(200);
      started = performance.now();
      await Promise.all(sweepers.map(({ pool: own }) => new PostgresStore({ pool: own, tableName: table, sweepInterval: 0, createTable: false }).reclaim()));
      figures.concurrentMs = performance.now() - started;
      figures.concurrent = await load.stop();
      figures.perSweeper = sweepers.map((s) => s.deleted);
      await Promise.all(sweepers.map((s) => s.pool.end()));
      figures.concurrentLeft = Number((await pool.query(`SELECT count(*) FROM ${table} WHERE expires_at <= $1`, [now])).rows[0].count);
      // 4. For comparison, the sweep as one statement (what the store did before it deleted in batches).
      await fill();
      load = runLoad(request);
      await sleep(200);
      started = performance.now();
      await pool.query(`DELETE FROM ${table} WHERE expires_at <= $1`, [Date.now()]);
      figures.oneStatementMs = performance.now() - started;
      figures.oneStatement = await load.stop();
      rounds.push(figures);
      console.log(
        `  round ${round}: p99 ${fmt.fixed(figures.baseline.p99, 2)} ms without a sweep (${fmt.int(figures.baseline.requests)} requests), ` +
          `${fmt.fixed(figures.sweep.p99, 2)} ms during one (${fmt.fixed(figures.sweep.p99 / figures.baseline.p99, 2)}×; sweep ${fmt.int(figures.sweepMs)} ms, ${figures.left} left), ` +
          `${fmt.fixed(figures.concurrent.p99, 2)} ms during three at once (${fmt.int(figures.concurrentMs)} ms; deleted ${figures.perSweeper.map(fmt.int).join(' / ')}, ${figures.concurrentLeft} left); ` +
          `${fmt.fixed(figures.oneStatement.p99, 2)} ms during one DELETE of them all (${fmt.int(figures.oneStatementMs)} ms); ` +
          `failures ${figures.baseline.failures + figures.sweep.failures + figures.concurrent.failures + figures.oneStatement.failures}`,
      );
    }
    return { fillMs, readPlan, batchPlan, rounds };
  } finally {
    store.close();
    await pool.end();
    await server.stop();
  }
}

/** A pool of its own that adds up the rows its sweep batches deleted. */
function countingPool(connectionString) {
  const pool = new pg.Pool({ connectionString, max: 2 });
  const counted = { pool, deleted: 0 };
  const query = pool.query.bind(pool);
  pool.query = async (...args) => {
    const result = await query(...args);
    if (typeof args[0] === 'string' && args[0].includes('WITH batch')) counted.deleted += Number(result.rows[0]?.deleted ?? 0);
    return result;
  };
  return counted;
}

// ---------------------------------------------------------------- FileStore

async function fileBench() {
  const base = mkdtempSync(join(tmpdir(), 'bench-sweep-files-'));
  const dir = join(base, 'sessions');
  const rounds = [];
  try {
    const store = new FileStore({ directory: dir, sweepInterval: 0 });
    const fill = () => {
      const started = Date.now();
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const expired = JSON.stringify({ data: DATA, meta: { createdAt: Date.now() - HOUR }, expiresAt: Date.now() - 1000 });
      for (let i = 0; i < FILES; i++) writeFileSync(join(dir, `gone-${i}.json`), expired, { mode: 0o600 });
      const live = JSON.stringify({ data: DATA, meta: { createdAt: Date.now() }, expiresAt: Date.now() + HOUR });
      for (let i = 0; i < LIVE_FILES; i++) writeFileSync(join(dir, `live-${i}.json`), live, { mode: 0o600 });
      return Date.now() - started;
    };
    const request = async (k) => {
      if ((await store.get(`live-${(k * 7919) % LIVE_FILES}`)) === undefined) throw new Error('live session missing');
    };
    for (let round = 1; round <= ROUNDS; round++) {
      const fillMs = fill();
      const figures = { round, fillMs };
      const delay = monitorEventLoopDelay({ resolution: 10 });
      // The load alone.
      delay.enable();
      let load = runLoad(request);
      await sleep(BASELINE_MS);
      figures.baseline = await load.stop();
      delay.disable();
      figures.baselineDelayMax = delay.max / 1e6;
      delay.reset();
      // The load during the sweep.
      delay.enable();
      load = runLoad(request);
      const started = performance.now();
      await store.reclaim();
      figures.sweepMs = performance.now() - started;
      figures.sweep = await load.stop();
      delay.disable();
      figures.sweepDelayMax = delay.max / 1e6;
      figures.sweepDelayP99 = delay.percentile(99) / 1e6;
      figures.left = readdirSync(dir).filter((name) => name.startsWith('gone-')).length;
      rounds.push(figures);
      console.log(
        `  round ${round}: ${fmt.int(FILES)} expired files written in ${fmt.int(fillMs)} ms; sweep ${fmt.int(figures.sweepMs)} ms (${figures.left} left); ` +
          `longest event-loop delay ${fmt.fixed(figures.baselineDelayMax, 1)} ms without, ${fmt.fixed(figures.sweepDelayMax, 1)} ms during; ` +
          `read p99 ${fmt.fixed(figures.baseline.p99, 2)} ms without, ${fmt.fixed(figures.sweep.p99, 2)} ms during; failures ${figures.baseline.failures + figures.sweep.failures}`,
      );
    }
    await store.close();
    return { rounds };
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- report

const results = { rounds: ROUNDS, expired: EXPIRED, live: LIVE, files: FILES, concurrency: CONCURRENCY, load: loadAverage() };
try {
  if (ONLY !== 'file') results.postgres = await postgresBench();
  if (ONLY !== 'pg') {
    console.log(`FileStore: ${fmt.int(FILES)} expired files and ${fmt.int(LIVE_FILES)} live ones`);
    results.file = await fileBench();
  }
} finally {
  await stopServices();
}
results.loadAfter = loadAverage();
const raw = saveRaw('sweep', results);

const lines = [
  '## Sweeping expired sessions at scale (`npm run bench:sweep`)',
  '',
  `${new Date().toISOString().slice(0, 10)}, ${machine()}, Node ${process.version}; load average ${results.load} before, ${results.loadAfter} after ` +
    `(the machine was shared: timings are noisy; medians over ${ROUNDS} rounds, range in brackets). Raw figures: \`${raw.slice(raw.indexOf('bench/'))}\`.`,
];
if (results.postgres) {
  const r = results.postgres.rounds;
  lines.push(
    '',
    `**PostgresStore**, ${fmt.int(EXPIRED)} expired rows and ${fmt.int(LIVE)} live ones (a throw-away PostgreSQL, default settings but fsync off), ` +
      `${CONCURRENCY} concurrent requests on the live sessions (each a read by id, every other one also a patch), pool of 20; sweep batches of 1,000 rows.`,
    '',
    '| | p99 ms | p99 / without | sweep ms | expired rows left |',
    '|---|---|---|---|---|',
    `| load alone | ${spread(r.map((x) => x.baseline.p99))} | 1 | | |`,
    `| during one sweep | ${spread(r.map((x) => x.sweep.p99))} | ${spread(r.map((x) => x.sweep.p99 / x.baseline.p99))} | ${spread(r.map((x) => x.sweepMs))} | ${r.map((x) => x.left).join(', ')} |`,
    `| during three sweeps at once | ${spread(r.map((x) => x.concurrent.p99))} | ${spread(r.map((x) => x.concurrent.p99 / x.baseline.p99))} | ${spread(r.map((x) => x.concurrentMs))} | ${r.map((x) => x.concurrentLeft).join(', ')} |`,
    `| for comparison: during one \`DELETE … WHERE expires_at <= now\` of them all | ${spread(r.map((x) => x.oneStatement.p99))} | ${spread(r.map((x) => x.oneStatement.p99 / x.baseline.p99))} | ${spread(r.map((x) => x.oneStatementMs))} | |`,
    '',
    `Rows deleted by each of the three sweepers, per round: ${r.map((x) => x.perSweeper.map(fmt.int).join(' / ')).join('; ')}. ` +
      `Requests per phase: ${r.map((x) => `${fmt.int(x.baseline.requests)} / ${fmt.int(x.sweep.requests)} / ${fmt.int(x.concurrent.requests)}`).join('; ')}; failed: ${r.reduce((n, x) => n + x.baseline.failures + x.sweep.failures + x.concurrent.failures, 0)}.`,
    '',
    'The read by id (`EXPLAIN`):',
    '',
    '```',
    results.postgres.readPlan,
    '```',
    '',
    'A sweep batch:',
    '',
    '```',
    results.postgres.batchPlan,
    '```',
  );
}
if (results.file) {
  const r = results.file.rounds;
  lines.push(
    '',
    `**FileStore**, ${fmt.int(FILES)} expired files and ${fmt.int(LIVE_FILES)} live ones on ${process.platform} (${tmpdir()}), ${CONCURRENCY} concurrent reads of live sessions.`,
    '',
    '| | longest event-loop delay ms | read p99 ms | sweep ms |',
    '|---|---|---|---|',
    `| load alone | ${spread(r.map((x) => x.baselineDelayMax))} | ${spread(r.map((x) => x.baseline.p99))} | |`,
    `| during the sweep | ${spread(r.map((x) => x.sweepDelayMax))} | ${spread(r.map((x) => x.sweep.p99))} | ${spread(r.map((x) => x.sweepMs))} |`,
    '',
    `Expired files left after each sweep: ${r.map((x) => x.left).join(', ')}.`,
  );
}
lines.push('', 'Command: `npm run bench:sweep` (environment: see the head of `bench/sweep.mjs`).');
const full = ROUNDS >= 3 && EXPIRED >= 1_000_000 && FILES >= 100_000 && ONLY === undefined;
if (full || process.env.BENCH_WRITE === '1') writeSection('sweep', lines.join('\n'));
console.log(`\n${lines.join('\n')}\n`);
