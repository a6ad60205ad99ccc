// npm run bench: every contender's server alone on one pinned core, wrk on the other, rounds
// interleaved with a shuffled order, each ratio taken against the same round's baseline of the
// platform. Method: ../README section "What is measured" (bench/README.md).
//
// Environment: BENCH_ROUNDS (5), BENCH_SECONDS (8, measured per route), BENCH_WARMUP (2, per route),
// BENCH_CONNECTIONS (32), BENCH_FILTER (a regular expression on variant names such as
// 'fastify/ns-memory'; the baselines of the platforms it selects always run), BENCH_SERVER_CPU (1),
// BENCH_LOAD_CPU (0), BENCH_ROUTES (hit,read,untouched), BENCH_NOTE (a sentence on the conditions),
// BENCH_WRITE=1 (write RESULTS.md even for a filtered run).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BENCH_DIR,
  distHas,
  ensureBenchDeps,
  env,
  fmt,
  loadAverage,
  machine,
  median,
  minMax,
  saveRaw,
  versions,
  writeSection,
} from './lib.mjs';

const ROUNDS = env('BENCH_ROUNDS', 5);
const SECONDS = env('BENCH_SECONDS', 8);
const WARMUP = env('BENCH_WARMUP', 2);
const CONNECTIONS = env('BENCH_CONNECTIONS', 32);
const SERVER_CPU = String(process.env.BENCH_SERVER_CPU ?? '1');
const LOAD_CPU = String(process.env.BENCH_LOAD_CPU ?? '0');
const ROUTES = (process.env.BENCH_ROUTES ?? 'hit,read,untouched').split(',').filter(Boolean);
const FILTER = process.env.BENCH_FILTER ? new RegExp(process.env.BENCH_FILTER) : undefined;
const READY_TIMEOUT_MS = 30_000;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
// Baseline and floor get a cookie of a session's size, so that every app parses a Cookie header.
const DUMMY_COOKIE = `bench=${'x'.repeat(43)}.${'y'.repeat(43)}`;

// ---------------------------------------------------------------------------------------------
// Processes: every child is tracked and killed on any exit path.

const children = new Set();
function killAll() {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  children.clear();
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the servers`);
    killAll();
    process.exit(130);
  });
}

function ensureWrk() {
  if (spawnSync('wrk', ['-v']).error === undefined) return;
  if (process.getuid?.() !== 0) throw new Error('wrk is missing: install Debian\'s `wrk` (apt-get install -y wrk)');
  console.log('wrk is missing: apt-get install -y wrk');
  execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk'], { stdio: 'inherit' });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

let nextPort = 4400 + (process.pid % 200) * 4;
async function startServer(name) {
  const port = nextPort++;
  if (nextPort > 65000) nextPort = 4400;
  const child = spawn('taskset', ['-c', SERVER_CPU, process.execPath, join(BENCH_DIR, 'server.mjs'), name, String(port)], {
    cwd: BENCH_DIR,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name}: not ready within ${READY_TIMEOUT_MS} ms\n${stderr}`)), READY_TIMEOUT_MS);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('READY')) { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${name}: exited with ${code} before ready\n${stderr}`)); });
  });
  child.removeAllListeners('exit');
  // taskset execs node, so the child's pid is the server's pid.
  return { child, port, pid: child.pid, stderr: () => stderr };
}

async function stopServer(server) {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) { children.delete(child); return; }
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 6000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** GET /hit without a cookie; the Set-Cookie name=value pairs it answers with form the session cookie. */
function firstCookie(port) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/hit', method: 'GET', timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`GET /hit answered ${res.statusCode}`));
        const pairs = (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]);
        resolve(pairs.length > 0 ? pairs.join('; ') : undefined);
      });
    });
    req.on('timeout', () => req.destroy(new Error('GET /hit timed out')));
    req.on('error', reject);
    req.end();
  });
}

function cpuTicks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14 and 15 of stat)
}

function rssBytes(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

function wrk(port, route, cookie, seconds) {
  const args = ['-c', LOAD_CPU, 'wrk', '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-H', `Cookie: ${cookie}`, `http://127.0.0.1:${port}/${route}`];
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      children.delete(child);
      if (code !== 0) return reject(new Error(`wrk exited with ${code}:\n${out}`));
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const socketErrors = /Socket errors: (.*)/.exec(out)?.[1];
      const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
      const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
      resolve({ rps, requests, non2xx, socketErrors, p50, p99 });
    });
  });
}

async function measure(name, round) {
  const server = await startServer(name);
  const result = { variant: name, round, routes: {} };
  try {
    const cookie = (await firstCookie(server.port)) ?? DUMMY_COOKIE;
    result.cookieLength = cookie.length;
    for (const route of ROUTES) {
      if (WARMUP > 0) await wrk(server.port, route, cookie, WARMUP);
      const before = cpuTicks(server.pid);
      const run = await wrk(server.port, route, cookie, SECONDS);
      const ticks = cpuTicks(server.pid) - before;
      run.cpuUsPerRequest = run.requests > 0 ? (ticks / CLK_TCK) * 1e6 / run.requests : NaN;
      run.rss = rssBytes(server.pid);
      if (run.non2xx > 0 || run.socketErrors) {
        console.warn(`  ! ${name} /${route}: ${run.non2xx} non-2xx responses${run.socketErrors ? `, socket errors ${run.socketErrors}` : ''}`);
      }
      result.routes[route] = run;
    }
  } finally {
    await stopServer(server);
  }
  return result;
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
// Analysis

const TARGETS = {
  fastify: { untouched: 0.97, memory: { read: 0.5, hit: 0.47 }, cookie: { read: 0.44, hit: 0.38 }, redis: { hit: 0.33 } },
  express: { untouched: 0.97, memory: { read: 0.83, hit: 0.82 }, cookie: { read: 0.8, hit: 0.78 }, redis: { hit: 0.74 } },
};

function analyse(runs, variants) {
  const byRound = new Map(); // round → variant → result
  for (const r of runs) {
    if (!byRound.has(r.round)) byRound.set(r.round, new Map());
    byRound.get(r.round).set(r.variant, r);
  }
  const stats = {};
  for (const name of variants) {
    const platform = name.split('/')[0];
    const perRoute = {};
    for (const route of ROUTES) {
      const ratios = [];
      const added = [];
      const overFloor = [];
      const own = [];
      for (const round of byRound.values()) {
        const mine = round.get(name)?.routes[route];
        const base = round.get(`${platform}/baseline`)?.routes[route];
        const floor = round.get(`${platform}/floor`)?.routes[route];
        if (mine === undefined) continue;
        own.push(mine);
        if (base !== undefined) {
          ratios.push(mine.rps / base.rps);
          added.push(1e6 / mine.rps - 1e6 / base.rps);
        }
        if (floor !== undefined) overFloor.push(1e6 / mine.rps - 1e6 / floor.rps);
      }
      perRoute[route] = {
        ratio: median(ratios),
        ratioRange: minMax(ratios),
        ratios,
        addedUs: median(added),
        addedRange: minMax(added),
        overFloorUs: median(overFloor),
        rps: median(own.map((o) => o.rps)),
        rpsRange: minMax(own.map((o) => o.rps)),
        p50: median(own.map((o) => o.p50)),
        p99: median(own.map((o) => o.p99)),
        cpuUs: median(own.map((o) => o.cpuUsPerRequest)),
        rssMiB: Math.max(...own.map((o) => o.rss)) / 2 ** 20,
        errors: own.reduce((n, o) => n + o.non2xx, 0),
        rounds: own.length,
      };
    }
    stats[name] = perRoute;
  }
  return stats;
}

function targetChecks(stats, variants, VARIANTS) {
  const lines = [];
  const check = (ok, text) => lines.push(`- ${ok === undefined ? '·' : ok ? '✅' : '❌'} ${text}`);
  for (const platform of ['fastify', 'express']) {
    const ours = variants.filter((v) => v.startsWith(`${platform}/ns-`));
    if (ours.length === 0) continue;
    const peers = variants.filter((v) => v.startsWith(`${platform}/`) && !v.includes('/ns-') && !v.endsWith('/baseline') && !v.endsWith('/floor') && !v.includes('+'));
    const T = TARGETS[platform];
    lines.push(`\n**${platform === 'fastify' ? 'Fastify' : 'Express'}**\n`);
    for (const v of ours) {
      const s = stats[v];
      const store = v.split('/ns-')[1];
      if (s.untouched) check(s.untouched.ratio >= T.untouched, `${v} /untouched ${fmt.ratio(s.untouched.ratio)} ≥ ${T.untouched}`);
      for (const route of ['read', 'hit']) {
        const target = T[store]?.[route];
        if (target !== undefined && s[route]) check(s[route].ratio >= target, `${v} /${route} ${fmt.ratio(s[route].ratio)} ≥ ${target}`);
      }
      for (const route of ['hit', 'untouched']) {
        if (!s[route]) continue;
        // A library opened per call inside the handler has no app-wide cost to compare on /untouched.
        const best = peers.filter((p) => stats[p]?.[route] && !(route === 'untouched' && VARIANTS[p]?.perCall)).map((p) => [p, stats[p][route].ratio]).sort((a, b) => b[1] - a[1])[0];
        if (best) check(s[route].ratio > best[1], `${v} /${route} ${fmt.ratio(s[route].ratio)} beats every peer (best: ${best[0]} ${fmt.ratio(best[1])})`);
      }
    }
    const mem = stats[`${platform}/ns-memory`];
    if (platform === 'fastify' && mem?.read && stats['fastify/secure-session']?.read) {
      const peer = stats['fastify/secure-session'].read.ratio;
      check(mem.read.ratio >= peer, `fastify/ns-memory /read ${fmt.ratio(mem.read.ratio)} ≥ @fastify/secure-session /read ${fmt.ratio(peer)}`);
    }
    if (mem && stats[`${platform}/floor`]) {
      for (const [route, limit] of [['read', 3], ['hit', 5]]) {
        if (mem[route]) check(mem[route].overFloorUs <= limit, `${platform}/ns-memory /${route}: ${fmt.us(mem[route].overFloorUs)} µs over Nest's floor (paired per round, median) ≤ ${limit} µs`);
      }
    }
  }
  return lines.join('\n');
}

function report(stats, variants, meta, VARIANTS) {
  const cell = (s) => (s === undefined ? '—' : `${fmt.ratio(s.ratio)} (${fmt.ratio(s.ratioRange[0])}–${fmt.ratio(s.ratioRange[1])}), ${fmt.us(s.addedUs)} µs`);
  const abs = (s) => (s === undefined ? '—' : `${fmt.int(s.rps)} · ${fmt.fixed(s.p50, 2)}/${fmt.fixed(s.p99, 2)} · ${fmt.fixed(s.cpuUs)}`);
  const out = [];
  out.push(`## \`npm run bench\` — ${meta.date}`, '');
  out.push(`- Machine: ${meta.machine}; Node ${meta.versions.node}.`);
  out.push(`- Method: each server alone on core ${SERVER_CPU} (\`taskset\`), wrk (${meta.wrk}) with 1 thread and ${CONNECTIONS} connections on core ${LOAD_CPU}; per route ${WARMUP} s warm-up then ${SECONDS} s measured; a fresh server per variant per round; ${meta.rounds} rounds, every round in a new random order of all variants; routes measured in the order ${ROUTES.map((r) => `/${r}`).join(', ')} on every app, each with the session cookie from a first \`GET /hit\` (baseline and floor: a dummy cookie of the same size).`);
  out.push(`- Conditions: load average ${meta.loadBefore} before, ${meta.loadAfter} after (1/5/15 min); per round: ${meta.roundLoads.join(' | ')}. ${meta.note}`);
  if (meta.skipped.length > 0) out.push(`- Skipped: ${meta.skipped.join('; ')}.`);
  out.push(`- Duration: ${(meta.elapsedMs / 60000).toFixed(1)} min. Raw figures: \`${meta.rawFile}\`.`);
  out.push('');
  out.push('Each cell: **median ratio to the same round\'s no-session baseline of the platform** (min–max over rounds), then the server time added per request, median of `1e6/rps − 1e6/rps(baseline)` (µs). Higher ratios are better; 1.00 is free.');
  out.push('');
  out.push(`| contender | ${ROUTES.map((r) => `\`/${r}\``).join(' | ')} |`);
  out.push(`|---|${ROUTES.map(() => '---:').join('|')}|`);
  for (const v of variants) {
    const label = `${v.startsWith('fastify') ? 'Fastify' : 'Express'}: ${VARIANTS[v].label}`;
    if (v.endsWith('/baseline')) {
      out.push(`| ${label} | ${ROUTES.map((r) => `${fmt.int(stats[v][r]?.rps)} req/s (${fmt.int(stats[v][r]?.rpsRange[0])}–${fmt.int(stats[v][r]?.rpsRange[1])})`).join(' | ')} |`);
    } else {
      out.push(`| ${label} | ${ROUTES.map((r) => cell(stats[v][r])).join(' | ')} |`);
    }
  }
  out.push('');
  out.push('Absolute figures (medians over rounds): requests/s · latency p50/p99 in ms · server CPU µs per request (from /proc, user + system); and the largest RSS seen.');
  out.push('');
  out.push(`| contender | ${ROUTES.map((r) => `\`/${r}\``).join(' | ')} | RSS MiB | errors |`);
  out.push(`|---|${ROUTES.map(() => '---:').join('|')}|---:|---:|`);
  for (const v of variants) {
    const s = stats[v];
    const rss = Math.max(...ROUTES.map((r) => s[r]?.rssMiB ?? NaN).filter(Number.isFinite));
    const errors = ROUTES.reduce((n, r) => n + (s[r]?.errors ?? 0), 0);
    out.push(`| ${v} | ${ROUTES.map((r) => abs(s[r])).join(' | ')} | ${fmt.fixed(rss, 0)} | ${errors} |`);
  }
  out.push('');
  out.push('### Targets (issue 9)');
  out.push(targetChecks(stats, variants, VARIANTS));
  out.push('');
  out.push('<details><summary>Versions</summary>', '', '| package | version |', '|---|---|');
  for (const [k, v] of Object.entries(meta.versions)) out.push(`| ${k} | ${v} |`);
  out.push('', '</details>');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  if (process.argv[2] === '--report') {
    // Re-render the table from a saved raw file (bench/results/run-*.json), e.g. after changing the report.
    const { VARIANTS } = await import('./apps.mjs');
    const raw = JSON.parse(readFileSync(process.argv[3], 'utf8'));
    const plan = Object.keys(raw.stats);
    const stats = analyse(raw.runs.filter((r) => r.error === undefined), plan);
    const file = process.argv[3];
    const markdown = report(stats, plan, { ...raw.meta, rawFile: file.includes('bench/') ? file.slice(file.indexOf('bench/')) : file }, VARIANTS);
    console.log(markdown);
    if (process.env.BENCH_WRITE === '1') writeSection('run', markdown);
    return;
  }
  ensureBenchDeps();
  ensureWrk();
  const { VARIANTS } = await import('./apps.mjs');
  const redisUp = await portOpen(6379);
  const pgUp = await portOpen(5432);
  const skipped = [];
  // Diagnostic variants run only when the filter names them.
  const selected = Object.keys(VARIANTS).filter((name) =>
    VARIANTS[name].diagnostic ? FILTER !== undefined && FILTER.test(name) : FILTER === undefined || FILTER.test(name) || name.endsWith('/baseline'));
  const variants = selected.filter((name) => {
    const v = VARIANTS[name];
    if (v.needs !== undefined && !distHas(v.needs)) { skipped.push(`${name} (dist/${v.needs} absent: that store is not built yet)`); return false; }
    if ((name.includes('redis')) && !redisUp) { skipped.push(`${name} (no Redis on 127.0.0.1:6379)`); return false; }
    if (name.includes('postgres') && !pgUp) { skipped.push(`${name} (no PostgreSQL on 127.0.0.1:5432)`); return false; }
    return true;
  });
  // Baselines only for platforms with something to compare.
  const platforms = new Set(variants.filter((v) => !v.endsWith('/baseline')).map((v) => v.split('/')[0]));
  const plan = variants.filter((v) => !v.endsWith('/baseline') || platforms.has(v.split('/')[0]) || platforms.size === 0);
  for (const s of skipped) console.log(`note: skipping ${s}`);
  const perVariant = ROUTES.length * (WARMUP + SECONDS) + 2;
  console.log(`${plan.length} variants × ${ROUTES.length} routes × ${ROUNDS} rounds, about ${((plan.length * perVariant * ROUNDS) / 60).toFixed(0)} min`);

  const wrkVersion = (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0].split(' Copyright')[0].trim() || 'wrk';
  const started = Date.now();
  const loadBefore = loadAverage();
  const roundLoads = [];
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = shuffle(plan);
    console.log(`\nround ${round}/${ROUNDS} (load ${loadAverage()}): ${order.join(', ')}`);
    for (const name of order) {
      try {
        const result = await measure(name, round);
        runs.push(result);
        console.log(`  ${name.padEnd(24)} ${ROUTES.map((r) => `/${r} ${fmt.int(result.routes[r]?.rps).padStart(7)}`).join('  ')}`);
      } catch (err) {
        console.error(`  ${name}: failed: ${err.message}`);
        runs.push({ variant: name, round, error: String(err.message), routes: {} });
      }
    }
    roundLoads.push(`r${round} ${loadAverage().split(' ')[0]}`);
  }
  const stats = analyse(runs.filter((r) => r.error === undefined), plan);
  const meta = {
    date: new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC',
    machine: machine(),
    versions: versions(),
    wrk: wrkVersion,
    rounds: ROUNDS,
    loadBefore,
    loadAfter: loadAverage(),
    roundLoads,
    skipped,
    elapsedMs: Date.now() - started,
    note: process.env.BENCH_NOTE ?? '',
  };
  const rawFile = saveRaw('run', { meta, config: { ROUNDS, SECONDS, WARMUP, CONNECTIONS, SERVER_CPU, LOAD_CPU, ROUTES }, runs, stats });
  meta.rawFile = rawFile.slice(rawFile.indexOf('bench/'));
  const markdown = report(stats, plan, meta, VARIANTS);
  console.log(`\n${markdown}`);
  // A filtered run is a partial look: it must not replace the full run's table.
  if (FILTER === undefined || process.env.BENCH_WRITE === '1') {
    writeSection('run', markdown);
    console.log('\nwritten to bench/RESULTS.md');
  } else {
    console.log(`\nBENCH_FILTER is set: bench/RESULTS.md left as it was (BENCH_WRITE=1 writes it anyway); raw figures in ${meta.rawFile}`);
  }
}

main().then(
  () => { killAll(); process.exit(0); },
  (err) => { console.error(err); killAll(); process.exit(1); },
);
