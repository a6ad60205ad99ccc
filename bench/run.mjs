// npm run bench: every contender's server up at once on one pinned core, each (contender, route)
// pair loaded by wrk on the other core for a short slice, in a fresh random order each iteration;
// every ratio taken against the platform's baseline within the same iteration, then the median and
// quartiles over iterations. Why and how: bench/README.md, "npm run bench".
//
//   node bench/run.mjs                     the full run (16 iterations of 2 s slices: about 40 min)
//   BENCH_QUICK=1 node bench/run.mjs       a smoke check (3 iterations of 1 s slices)
//   node bench/run.mjs --report FILE.json  the table again from a raw file of bench/results/
//
// Environment: BENCH_ITERATIONS (16), BENCH_SLICE (2, whole seconds), BENCH_WARMUP (2, whole seconds,
// one slice per pair before the first iteration; 0: none), BENCH_QUICK=1 (3 iterations, 1 s slices,
// 1 s warm-up unless set), BENCH_CONNECTIONS (32), BENCH_FILTER (a regular expression on contender
// names such as 'fastify/ns-memory'; the baselines of the platforms it selects always run),
// BENCH_ROUTES (hit,read,untouched), BENCH_SERVER_CPU (1), BENCH_LOAD_CPU (0), BENCH_NOTE (a sentence
// on the conditions), BENCH_VERBOSE=1 (print every slice), BENCH_WRITE=1 (write RESULTS.md even for a
// filtered, quick or short run), NEST_SESSIONS_DIST (the build to load; default dist/), BENCH_NODE
// (a Node.js major line such as 24: the whole run, servers included, on the newest release of that
// line, fetched from the registry like the CI's; default: the Node that runs this script). The run
// records the Node version it ran on.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { distHas, ensureBenchDeps, env, fmt, loadAverage, machine, saveRaw, versions, writeSection } from './lib.mjs';
import { cpuTicks, memory, rssBytes, ticksToUs } from './procfs.mjs';
import { report } from './report.mjs';
import { firstCookie, killAll, portOpen, startServer, stopChildrenOnExit, stopServer } from './servers.mjs';
import { analyse } from './stats.mjs';
import { ensureWrk, wrk, wrkVersion } from './wrk.mjs';

await onNamedNode();

const ALL_ROUTES = ['hit', 'read', 'untouched'];
const MIN_ITERATIONS = 15; // fewer cannot give quartiles worth reading
// Baseline and floors get a cookie of a session's size, so that every app parses a Cookie header.
const DUMMY_COOKIE = `bench=${'x'.repeat(43)}.${'y'.repeat(43)}`;
// Per server: the largest RSS seen in the previous runs was ~180 MiB; ask for room to spare.
const MEMORY_PER_SERVER = 400 * 2 ** 20;
// Measured on the smoke run: spawning wrk, its 32 connections, reading /proc, per slice.
const SLICE_OVERHEAD_S = 0.1;

function wholeSeconds(name, fallback, { zero = false } = {}) {
  if (zero && process.env[name] === '0') return 0;
  const value = env(name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be whole seconds (wrk takes no fractions), got ${value}`);
  return value;
}

function readConfig() {
  const quick = process.env.BENCH_QUICK === '1';
  return {
    quick,
    iterations: env('BENCH_ITERATIONS', quick ? 3 : 16),
    slice: wholeSeconds('BENCH_SLICE', quick ? 1 : 2),
    warmup: wholeSeconds('BENCH_WARMUP', quick ? 1 : 2, { zero: true }),
    connections: env('BENCH_CONNECTIONS', 32),
    serverCpu: String(process.env.BENCH_SERVER_CPU ?? '1'),
    loadCpu: String(process.env.BENCH_LOAD_CPU ?? '0'),
    routes: (process.env.BENCH_ROUTES ?? ALL_ROUTES.join(',')).split(',').filter(Boolean),
    filter: process.env.BENCH_FILTER || undefined,
  };
}

function shuffle(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The plan: which contenders, which routes

async function makePlan(config, VARIANTS) {
  const filter = config.filter === undefined ? undefined : new RegExp(config.filter);
  const [redisUp, pgUp] = [await portOpen(6379), await portOpen(5432)];
  const skipped = [];
  const skip = (why) => { skipped.push(why); return false; };
  const picked = (name) => filter === undefined || filter.test(name);
  // A contender measured against another (GraphQL with sessions, against its driver without) brings it along.
  const referenced = new Set(Object.entries(VARIANTS).filter(([name, v]) => v.reference !== undefined && picked(name)).map(([, v]) => v.reference));
  const chosen = Object.entries(VARIANTS).filter(([name, v]) => {
    // Diagnostic variants run only when the filter names them; baselines always.
    if (v.diagnostic) return filter?.test(name) ?? false;
    if (!(picked(name) || v.kind === 'baseline' || referenced.has(name))) return false;
    if (v.needs !== undefined && !distHas(v.needs)) return skip(`${name} (${v.needs} absent from the build)`);
    if (name.includes('redis') && !redisUp) return skip(`${name} (no Redis on 127.0.0.1:6379)`);
    if (name.includes('postgres') && !pgUp) return skip(`${name} (no PostgreSQL on 127.0.0.1:5432)`);
    return true;
  });
  const plan = chosen.map(([name, v]) => ({
    name,
    platform: v.platform,
    kind: v.kind,
    label: v.label,
    ours: v.ours,
    perCall: v.perCall === true,
    reference: v.reference,
    requests: v.requests,
    routes: (v.routes ?? ALL_ROUTES).filter((r) => config.routes.includes(r)),
  })).filter((v) => v.routes.length > 0 || v.kind === 'baseline');
  // A baseline runs for a platform with something to compare, with the routes that compare with it.
  const others = plan.filter((v) => v.kind !== 'baseline');
  const compared = plan.filter((v) => v.kind !== 'baseline' || others.some((o) => o.platform === v.platform) || others.length === 0);
  for (const base of compared.filter((v) => v.kind === 'baseline')) {
    const untouched = others.some((o) => o.platform === base.platform && o.routes.includes('untouched'));
    base.routes = untouched ? ['hit', 'untouched'] : ['hit'];
  }
  return { plan: compared, skipped };
}

// ---------------------------------------------------------------------------------------------
// Slices

/**
 * Loads one (server, route) pair for `seconds`. Reads every server's CPU time around it: the loaded
 * one's gives CPU µs per request, the others' how idle they stayed (added to `idle`).
 */
async function loadSlice({ servers, server, route, seconds, config, idle }) {
  const before = new Map(servers.map((s) => [s.name, cpuTicks(s.pid)]));
  const started = performance.now();
  const run = await wrk({ cpu: config.loadCpu, port: server.port, route, cookie: server.cookie, seconds, connections: config.connections, request: server.requests?.[route] });
  const wallMs = performance.now() - started;
  for (const s of servers) {
    const ticks = cpuTicks(s.pid) - before.get(s.name);
    if (s === server) {
      run.cpuUs = run.requests > 0 ? ticksToUs(ticks) / run.requests : NaN;
    } else if (Number.isFinite(ticks)) {
      const entry = idle.get(s.name) ?? { ticks: 0, wallMs: 0 };
      entry.ticks += ticks;
      entry.wallMs += wallMs;
      idle.set(s.name, entry);
    }
  }
  return run;
}

async function runPairs({ pairs, servers, seconds, config, idle, iteration, slices }) {
  for (const { server, route } of pairs) {
    const record = { iteration, variant: server.name, route };
    try {
      if (!server.alive) throw new Error(`server exited: ${server.stderr().trim().split('\n').slice(-3).join(' ')}`);
      Object.assign(record, await loadSlice({ servers, server, route, seconds, config, idle }));
      if (record.non2xx > 0 || record.socketErrors) {
        console.warn(`  ! ${server.name} /${route}: ${record.non2xx} non-2xx${record.socketErrors ? `, socket errors ${record.socketErrors}` : ''}`);
      }
      if (process.env.BENCH_VERBOSE === '1') {
        console.log(`  ${`${server.name} /${route}`.padEnd(34)} ${fmt.int(record.rps).padStart(7)} req/s ${fmt.fixed(record.cpuUs).padStart(7)} µs/req`);
      }
    } catch (err) {
      record.error = String(err.message);
      console.error(`  ${server.name} /${route}: failed: ${record.error}`);
    }
    if (slices !== undefined) slices.push(record);
  }
}

// ---------------------------------------------------------------------------------------------

async function startAll(plan, config) {
  const servers = [];
  const skipped = [];
  for (const v of plan) {
    try {
      const server = await startServer(v.name, config.serverCpu);
      server.requests = v.requests;
      const session = v.kind === 'ours' || v.kind === 'peer' || v.kind === 'graphql';
      server.cookie = (await firstCookie(server.port, { requests: v.requests, needsCookie: session, readsBack: session })) ?? DUMMY_COOKIE;
      servers.push(server);
    } catch (err) {
      if (v.kind === 'baseline') throw err;
      skipped.push(`${v.name} (did not start: ${String(err.message).split('\n')[0]})`);
    }
  }
  return { servers, skipped };
}

function estimateMinutes(pairs, config) {
  const startup = pairs.servers * 2;
  const warmup = config.warmup > 0 ? pairs.count * (config.warmup + SLICE_OVERHEAD_S) : 0;
  return (startup + warmup + config.iterations * pairs.count * (config.slice + SLICE_OVERHEAD_S)) / 60;
}

async function main() {
  const { VARIANTS } = await import('./apps.mjs');
  if (process.argv[2] === '--report') {
    // Re-render the table from a saved raw file (bench/results/run-*.json), e.g. after changing the report.
    const file = process.argv[3];
    const raw = JSON.parse(readFileSync(file, 'utf8'));
    const markdown = report(raw.plan, analyse(raw.slices, raw.plan), { ...raw.meta, rawFile: file.includes('bench/') ? file.slice(file.indexOf('bench/')) : file });
    console.log(markdown);
    if (process.env.BENCH_WRITE === '1') writeSection('run', markdown);
    return;
  }
  const config = readConfig();
  ensureBenchDeps();
  ensureWrk();
  stopChildrenOnExit();
  const { plan: planned, skipped } = await makePlan(config, VARIANTS);
  for (const s of skipped) console.log(`note: skipping ${s}`);
  const pairCount = planned.reduce((n, v) => n + v.routes.length, 0);
  console.log(`${planned.length} servers, ${pairCount} (contender, route) pairs × ${config.iterations} iterations of ${config.slice} s slices: about ${estimateMinutes({ servers: planned.length, count: pairCount }, config).toFixed(0)} min`);
  if (config.quick || config.iterations < MIN_ITERATIONS) console.log(`(${config.quick ? 'quick mode' : `${config.iterations} iterations`}: a smoke check, not figures to decide on)`);

  const memBefore = memory();
  if (memBefore.available < planned.length * MEMORY_PER_SERVER) {
    throw new Error(`${(memBefore.available / 2 ** 30).toFixed(1)} GiB available, ${planned.length} servers want about ${((planned.length * MEMORY_PER_SERVER) / 2 ** 30).toFixed(1)} GiB: stop something or narrow BENCH_FILTER`);
  }
  const started = Date.now();
  const loadBefore = loadAverage();
  if (Number(loadBefore.split(' ')[0]) > 1) {
    console.warn(`warning: load average ${loadBefore}: something else is running, and it shares the server core; the figures will be noisy`);
  }
  const { servers, skipped: notStarted } = await startAll(planned, config);
  skipped.push(...notStarted);
  for (const s of notStarted) console.log(`note: skipping ${s}`);
  const plan = planned.filter((v) => servers.some((s) => s.name === v.name));
  const byName = new Map(servers.map((s) => [s.name, s]));
  const pairs = plan.flatMap((v) => v.routes.map((route) => ({ server: byName.get(v.name), route })));
  const rssStart = Object.fromEntries(servers.map((s) => [s.name, rssBytes(s.pid)]));
  console.log(`${servers.length} servers up in ${((Date.now() - started) / 1000).toFixed(0)} s: ${fmt.fixed(Object.values(rssStart).reduce((a, b) => a + b, 0) / 2 ** 20, 0)} MiB resident in all, ${(memory().available / 2 ** 30).toFixed(1)} GiB available`);

  const wrkName = wrkVersion();
  const idle = new Map(); // server name → { ticks, wallMs } while another server was loaded
  const slices = [];
  if (config.warmup > 0) {
    console.log(`warm-up: ${pairs.length} slices of ${config.warmup} s`);
    await runPairs({ pairs: shuffle(pairs), servers, seconds: config.warmup, config, idle, iteration: 0 });
  }
  for (let iteration = 1; iteration <= config.iterations; iteration++) {
    const t0 = Date.now();
    await runPairs({ pairs: shuffle(pairs), servers, seconds: config.slice, config, idle, iteration, slices });
    const mine = slices.filter((s) => s.iteration === iteration);
    const base = mine.filter((s) => s.route === 'hit' && s.variant.endsWith('/baseline')).map((s) => `${s.variant} /hit ${fmt.int(s.rps)}`);
    const failed = mine.filter((s) => s.error !== undefined).length;
    console.log(`iteration ${iteration}/${config.iterations} in ${((Date.now() - t0) / 1000).toFixed(0)} s (load ${loadAverage().split(' ')[0]}): ${base.join(', ')} req/s${failed > 0 ? `; ${failed} slices failed` : ''}`);
  }

  const rssEnd = Object.fromEntries(servers.map((s) => [s.name, rssBytes(s.pid)]));
  const memEnd = memory();
  await Promise.all(servers.map((s) => stopServer(s)));
  const meta = {
    date: `${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`,
    machine: machine(),
    versions: versions(),
    wrk: wrkName,
    config,
    iterationsDone: config.iterations,
    loadBefore,
    loadAfter: loadAverage(),
    skipped,
    rssStart,
    rssEnd,
    memory: {
      serversMiB: Object.values(rssEnd).filter(Number.isFinite).reduce((a, b) => a + b, 0) / 2 ** 20,
      availableBeforeGiB: memBefore.available / 2 ** 30,
      availableEndGiB: memEnd.available / 2 ** 30,
    },
    // Percent of one core each server used while it was not the one loaded.
    idle: Object.fromEntries([...idle].map(([name, { ticks, wallMs }]) => [name, (100 * ticksToUs(ticks)) / (wallMs * 1000)])),
    elapsedMs: Date.now() - started,
    note: process.env.BENCH_NOTE ?? '',
  };
  const rawFile = saveRaw('run', { meta, plan, slices });
  meta.rawFile = rawFile.slice(rawFile.indexOf('bench/'));
  const markdown = report(plan, analyse(slices, plan), meta);
  console.log(`\n${markdown}`);
  // A partial or short run must not replace a full run's table.
  const partial = config.filter !== undefined || config.quick || config.iterations < MIN_ITERATIONS;
  if (!partial || process.env.BENCH_WRITE === '1') {
    writeSection('run', markdown);
    console.log('\nwritten to bench/RESULTS.md');
  } else {
    console.log(`\nA filtered, quick or short run: bench/RESULTS.md left as it was (BENCH_WRITE=1 writes it anyway); raw figures in ${meta.rawFile}`);
  }
}

main().then(
  () => { killAll(); process.exit(0); },
  (err) => { console.error(err); killAll(); process.exit(1); },
);

/** BENCH_NODE: runs this script again on the named Node line, unless it runs there already. */
async function onNamedNode() {
  const wanted = process.env.BENCH_NODE;
  if (wanted === undefined || wanted === '') return;
  if (!/^\d+$/.test(wanted)) throw new Error(`BENCH_NODE must be a Node.js major version such as 24, got ${wanted}`);
  if (process.versions.node.split('.')[0] === wanted) return;
  const { nodeBinary } = await import('../scripts/node-versions.mjs');
  const bin = await nodeBinary(Number(wanted), { log: (line) => console.log(line) });
  const result = spawnSync(`${bin}/node`, process.argv.slice(1), { stdio: 'inherit', env: process.env });
  process.exit(result.status ?? 1);
}
