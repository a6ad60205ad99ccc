// npm run bench:soak (node --expose-gc bench/soak.mjs): does memory stay bounded?
// 200,000 requests that each create a session, through Fastify's inject (no network), against a
// nest-sessions app with `new MemoryStore({ maxSessions: 10000 })`, then the same on the CookieStore.
// Heap used is read after a forced GC. Environment: BENCH_SOAK_REQUESTS (200000), BENCH_SOAK_MARK
// (20000), BENCH_SOAK_MAX_SESSIONS (10000), BENCH_SOAK_CONCURRENCY (16).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (typeof globalThis.gc !== 'function') {
  // Without --expose-gc the heap figures would mean nothing: re-run with it.
  const child = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

const { ensureBenchDeps, distHas, distUrl, env, fmt, machine, saveRaw, writeSection, loadAverage } = await import('./lib.mjs');
ensureBenchDeps();
await import('reflect-metadata');
const { Controller, Get, Module } = await import('@nestjs/common');
const { NestFactory } = await import('@nestjs/core');
const { FastifyAdapter } = await import('@nestjs/platform-fastify');
const { SessionModule, Session, MemoryStore } = await import(distUrl('index.js'));

const REQUESTS = env('BENCH_SOAK_REQUESTS', 200_000);
const MARK = env('BENCH_SOAK_MARK', 20_000);
const MAX_SESSIONS = env('BENCH_SOAK_MAX_SESSIONS', 10_000);
const CONCURRENCY = env('BENCH_SOAK_CONCURRENCY', 16);
const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
const TOLERANCE = 0.15;

async function heapAfterGc() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().heapUsed;
}

/** A Fastify app whose GET /new stores a fresh session on every call (no cookie is ever sent back). */
async function createApp(store) {
  class SoakController {
    create(session) {
      session.set('userId', ++SoakController.count);
      session.set('visits', 1);
      return { ok: true };
    }
  }
  SoakController.count = 0;
  const proto = SoakController.prototype;
  Session()(proto, 'create', 0);
  Reflect.defineMetadata('design:paramtypes', [Object], proto, 'create');
  Get('new')(proto, 'create', Object.getOwnPropertyDescriptor(proto, 'create'));
  Reflect.defineMetadata('design:paramtypes', [], SoakController);
  Controller()(SoakController);
  class SoakModule {}
  Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [SoakController] })(SoakModule);
  const app = await NestFactory.create(SoakModule, new FastifyAdapter(), { logger: ['error'] });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

/** Sends `count` requests, CONCURRENCY at a time; `onCookie` sees each Set-Cookie value. */
async function drive(app, count, onCookie) {
  let sent = 0;
  let failures = 0;
  async function worker() {
    while (sent < count) {
      sent++;
      const res = await app.inject({ method: 'GET', url: '/new' });
      if (res.statusCode !== 200) failures++;
      if (onCookie !== undefined) {
        const header = res.headers['set-cookie'];
        const first = Array.isArray(header) ? header[0] : header;
        if (first !== undefined) onCookie(first.split(';')[0].split('=').slice(1).join('='));
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (failures > 0) throw new Error(`${failures} of ${count} requests failed`);
}

async function soak(label, store) {
  const app = await createApp(store);
  const samples = [];
  const started = Date.now();
  let done = 0;
  try {
    while (done < REQUESTS) {
      const step = Math.min(MARK, REQUESTS - done);
      await drive(app, step);
      done += step;
      samples.push({ requests: done, heap: await heapAfterGc(), sessions: store.size });
      process.stdout.write(`  ${label}: ${done.toLocaleString('en-US')} requests, heap ${(samples.at(-1).heap / 2 ** 20).toFixed(1)} MiB${store.size === undefined ? '' : `, ${store.size} sessions`}\n`);
    }
  } finally {
    await app.close();
  }
  const mark = samples.find((s) => s.requests >= MARK) ?? samples[0];
  const end = samples.at(-1);
  const growth = (end.heap - mark.heap) / mark.heap;
  const maxSessions = Math.max(...samples.map((s) => s.sessions ?? 0));
  return { label, samples, mark, end, growth, maxSessions, seconds: (Date.now() - started) / 1000 };
}

/**
 * Heap per stored session: the same warmed store full (MAX_SESSIONS sessions) and then emptied.
 * Emptying goes through the store's own `reclaim()`, with the clock moved past every expiry for
 * that one call, so the harness never has to hold the ids itself.
 */
async function bytesPerSession() {
  const store = new MemoryStore({ maxSessions: MAX_SESSIONS, sweepInterval: 0 });
  const app = await createApp(store);
  const emptyStore = () => {
    const realNow = Date.now;
    Date.now = () => realNow() + 10 * 365 * 24 * 3600 * 1000;
    try { store.reclaim(); } finally { Date.now = realNow; }
    if (store.size !== 0) throw new Error(`store not emptied: ${store.size} sessions left`);
  };
  try {
    const figures = [];
    await drive(app, MAX_SESSIONS + 2_000); // warm every code path, and the store is full
    for (let i = 0; i < 2; i++) {
      if (i > 0) await drive(app, MAX_SESSIONS);
      const sessions = store.size;
      const full = await heapAfterGc();
      emptyStore();
      const empty = await heapAfterGc();
      figures.push({ sessions, full, empty, perSession: (full - empty) / sessions });
    }
    return { ...figures.at(-1), perSession: figures.reduce((n, f) => n + f.perSession, 0) / figures.length, figures };
  } finally {
    await app.close();
    store.close();
  }
}

const results = {};
console.log(`soak: ${REQUESTS.toLocaleString('en-US')} requests per store, each creating a session; heap after forced GC every ${MARK.toLocaleString('en-US')}`);
const memory = new MemoryStore({ maxSessions: MAX_SESSIONS });
results.memory = await soak('MemoryStore', memory);
memory.close();
results.memoryPerSession = await bytesPerSession();
if (distHas('stores/cookie.store.js')) {
  const { CookieStore } = await import(distUrl('stores/cookie.store.js'));
  results.cookie = await soak('CookieStore', new CookieStore({ secret: SECRET }));
} else {
  console.log('note: dist/stores/cookie.store.js is absent: CookieStore soak skipped');
}

const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const pct = (g) => `${g >= 0 ? '+' : '−'}${Math.abs(g * 100).toFixed(1)}%`;
const m = results.memory;
const memoryPass = Math.abs(m.growth) <= TOLERANCE && m.maxSessions <= MAX_SESSIONS;
const lines = [
  `## \`npm run bench:soak\` — ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`,
  '',
  `- ${machine()}; Node ${process.version}; Fastify through \`app.inject()\`, ${CONCURRENCY} requests in flight; each request creates a session (two keys); heap used read after forced GC; load average ${loadAverage()} at the end.`,
  '',
  '| store | heap at ' + MARK.toLocaleString('en-US') + ' | heap at ' + REQUESTS.toLocaleString('en-US') + ' | change | sessions held (max) | time | result |',
  '|---|---:|---:|---:|---:|---:|---|',
  `| MemoryStore({ maxSessions: ${MAX_SESSIONS} }) | ${mib(m.mark.heap)} | ${mib(m.end.heap)} | ${pct(m.growth)} | ${m.maxSessions.toLocaleString('en-US')} | ${m.seconds.toFixed(0)} s | ${memoryPass ? '✅ PASS' : '❌ FAIL'} (within ${TOLERANCE * 100}%, ≤ ${MAX_SESSIONS.toLocaleString('en-US')} sessions) |`,
];
let cookiePass = true;
if (results.cookie) {
  const c = results.cookie;
  cookiePass = Math.abs(c.growth) <= TOLERANCE;
  lines.push(`| CookieStore | ${mib(c.mark.heap)} | ${mib(c.end.heap)} | ${pct(c.growth)} | — (client-side) | ${c.seconds.toFixed(0)} s | ${cookiePass ? '✅ PASS' : '❌ FAIL'} (within ${TOLERANCE * 100}%) |`);
}
const b = results.memoryPerSession;
lines.push(
  '',
  `- MemoryStore heap per stored session: **${fmt.int(b.perSession)} bytes** (mean of ${b.figures.length} fills of a warmed store: ${b.figures.map((f) => `${mib(f.full)} with ${f.sessions.toLocaleString('en-US')} sessions of two keys, ${mib(f.empty)} emptied`).join('; ')}).`,
  `- Heap samples (MiB, every ${MARK.toLocaleString('en-US')} requests): MemoryStore ${m.samples.map((s) => (s.heap / 2 ** 20).toFixed(1)).join(', ')}${results.cookie ? `; CookieStore ${results.cookie.samples.map((s) => (s.heap / 2 ** 20).toFixed(1)).join(', ')}` : ''}.`,
);
const markdown = lines.join('\n');
console.log(`\n${markdown}`);
saveRaw('soak', results);
writeSection('soak', markdown);
console.log('\nwritten to bench/RESULTS.md');
process.exit(memoryPass && cookiePass ? 0 : 1);
