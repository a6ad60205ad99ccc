// Where a route's time goes: one contender's server under `node --cpu-prof`, loaded with wrk, then
// the self time per function, grouped by where the code lives.
//   node bench/profile.mjs <variant> <route> [seconds]      e.g. fastify/ns-memory read 10
//   node bench/profile.mjs --report <file.cpuprofile>       summarise an existing profile
// Environment: BENCH_SERVER_CPU (1), BENCH_LOAD_CPU (0), BENCH_CONNECTIONS (32), PROFILE_TOP (25).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, DIST_DIR } from './lib.mjs';
import { firstCookie } from './servers.mjs';
import { wrk } from './wrk.mjs';

const TOP = Number(process.env.PROFILE_TOP ?? 25);

function where(url) {
  if (url.startsWith(`file://${DIST_DIR}/`) || url.startsWith(`${DIST_DIR}/`)) return 'nest-sessions';
  if (url.includes('/@nestjs/')) return 'nest';
  if (url.includes('/fastify/') || url.includes('/@fastify/') || url.includes('/find-my-way/') || url.includes('/light-my-request/')) return 'fastify';
  if (url.includes('/express/') || url.includes('/router/') || url.includes('/body-parser/') || url.includes('/finalhandler/') || url.includes('/send/')) return 'express';
  if (url.includes('/rxjs/')) return 'rxjs';
  if (url.includes('node_modules')) return `other: ${url.split('node_modules/').at(-1).split('/').slice(0, url.includes('node_modules/@') ? 2 : 1).join('/')}`;
  if (url.startsWith('node:')) return 'node';
  if (url === '') return 'native / VM';
  return 'other';
}

export function summarise(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map(); // node id → µs
  for (let i = 0; i < profile.samples.length; i++) {
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  let total = 0;
  let idle = 0;
  const byFunction = new Map();
  const byPlace = new Map();
  for (const [id, us] of self) {
    const { callFrame } = nodes.get(id);
    const name = callFrame.functionName || '(anonymous)';
    total += us;
    if (name === '(idle)') { idle += us; continue; }
    const place = name.startsWith('(') ? name : where(callFrame.url);
    const file = callFrame.url.split('/').slice(-2).join('/');
    const key = `${name} ${file}:${callFrame.lineNumber + 1}`;
    const entry = byFunction.get(key) ?? { key, place, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us) => `${((100 * us) / busy).toFixed(1)}%`.padStart(6);
  const lines = [`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (idle excluded from the shares)`, '', 'self time by place:'];
  for (const [place, us] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 14)) lines.push(`  ${pct(us)}  ${place}`);
  lines.push('', `top ${TOP} functions by self time:`);
  for (const e of [...byFunction.values()].sort((a, b) => b.us - a.us).slice(0, TOP)) lines.push(`  ${pct(e.us)}  [${e.place}] ${e.key}`);
  const ours = [...byFunction.values()].filter((e) => e.place === 'nest-sessions').sort((a, b) => b.us - a.us);
  lines.push('', `nest-sessions functions (self time, ${pct(ours.reduce((n, e) => n + e.us, 0)).trim()} in all):`);
  for (const e of ours.slice(0, TOP)) lines.push(`  ${pct(e.us)}  ${e.key}`);
  return lines.join('\n');
}

async function profileRoute(variant, route, seconds) {
  const dir = mkdtempSync(join(tmpdir(), 'nest-sessions-prof-'));
  const port = 4900 + (process.pid % 90);
  const server = spawn('taskset', ['-c', process.env.BENCH_SERVER_CPU ?? '1', process.execPath, '--cpu-prof', `--cpu-prof-dir=${dir}`, join(BENCH_DIR, 'server.mjs'), variant, String(port)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const kill = () => { try { server.kill('SIGKILL'); } catch { /* gone */ } };
  process.on('exit', kill);
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server not ready in 30 s')), 30_000);
      server.stdout.on('data', (d) => { if (String(d).includes('READY')) { clearTimeout(timer); resolve(); } });
      server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    server.removeAllListeners('exit');
    const { VARIANTS } = await import('./apps.mjs');
    const requests = VARIANTS[variant]?.requests;
    const cookie = (await firstCookie(port, { requests })) ?? 'bench=x';
    const load = (seconds) => wrk({ cpu: process.env.BENCH_LOAD_CPU ?? '0', port, route, cookie, seconds, connections: Number(process.env.BENCH_CONNECTIONS ?? 32), request: requests?.[route] });
    await load(2); // warm-up (in the profile too, but short)
    const run = await load(seconds);
    console.log(`${run.requests} requests, ${Math.round(run.rps)} req/s, non-2xx: ${run.non2xx}`);
  } finally {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    const timer = setTimeout(kill, 8000);
    await exited;
    clearTimeout(timer);
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no profile written in ${dir}`);
  return join(dir, file);
}

const args = process.argv.slice(2);
if (args[0] === '--report') {
  console.log(summarise(args[1]));
} else if (args.length >= 2) {
  const file = await profileRoute(args[0], args[1], Number(args[2] ?? 10));
  console.log(summarise(file));
} else {
  console.error('usage: node bench/profile.mjs <variant> <route> [seconds] | --report <file.cpuprofile>');
  process.exit(2);
}
