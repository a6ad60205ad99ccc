// Soak test: 100,000 requests over loopback HTTP (127.0.0.1, one keep-alive connection) against a
// nest-sessions app on Fastify with a MemoryStore capped at 10,000 sessions. Checks that memory does not grow with the
// number of requests: the heap after GC at the end may exceed the heap after GC at the 10,000-request
// mark by at most 15%, and the store never holds more than its cap.
//
// Run with `npm run soak` (builds first, then `node --expose-gc scripts/soak.mjs`). The library is
// loaded from dist/. Exits 1 when a check fails, 2 when it cannot run.
//
// Not app.inject(): Fastify's inject (light-my-request) itself retains about 10 KB per call here,
// even in a bare Fastify app without Nest, which would drown what this script measures.
//
// Phases:
//   requests      1–10,000   new visitors only: the store fills up to its cap (10,000 sessions)
//   requests 10,001–100,000  a mix: 40% new visitors (a session created, the least recently used
//                            evicted), 20% returning visitors who write, 20% returning visitors who
//                            only read, 20% a route that never asks for a session
import 'reflect-metadata';
import http from 'node:http';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { MemoryStore, Session, SessionModule } from '../dist/index.js';

const TOTAL = 100_000;
const MARK = 10_000;
const MAX_SESSIONS = 10_000;
const MAX_GROWTH = 0.15;
const RECENT = 2_000; // returning visitors come back with one of the last RECENT cookies
const SECRET = 'soak-test-secret-that-is-long-enough-0123456789';

if (typeof globalThis.gc !== 'function') {
  console.error('soak: run with node --expose-gc (npm run soak does)');
  process.exit(2);
}

// A plain-JavaScript controller: decorators applied as functions, parameter decorators first.
class SoakController {
  untouched() {
    return { ok: true };
  }
  visit(session) {
    const visits = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits);
    if (visits === 1) session.set('profile', { name: 'visitor', theme: 'dark', tags: ['a', 'b', 'c'] });
    return { visits };
  }
  read(session) {
    return { visits: session.get('visits') ?? null };
  }
}
const route = (method, path, withSession) => {
  const proto = SoakController.prototype;
  if (withSession) Session()(proto, method, 0);
  Get(path)(proto, method, Object.getOwnPropertyDescriptor(proto, method));
};
route('untouched', 'untouched', false);
route('visit', 'visit', true);
route('read', 'read', true);
Controller()(SoakController);

const store = new MemoryStore({ maxSessions: MAX_SESSIONS });
class SoakModule {}
Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [SoakController] })(SoakModule);

function heapAfterGc() {
  for (let i = 0; i < 3; i++) globalThis.gc();
  return process.memoryUsage().heapUsed;
}
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** The `sid=...` pair of a response's Set-Cookie, if it set one. */
function sidOf(response) {
  const header = response.headers['set-cookie'];
  const list = header === undefined ? [] : Array.isArray(header) ? header : [header];
  for (const cookie of list) if (cookie.startsWith('sid=')) return cookie.slice(0, cookie.indexOf(';'));
  return undefined;
}

const app = await NestFactory.create(SoakModule, new FastifyAdapter(), { logger: false });
await app.listen(0, '127.0.0.1');
const { port } = app.getHttpServer().address();
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One GET on the loopback server: status, headers and body. */
function get(path, cookie) {
  return new Promise((resolve, reject) => {
    const headers = cookie === undefined ? {} : { cookie };
    http
      .get({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ statusCode: res.statusCode, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

const recent = new Array(RECENT);
let recentCount = 0;
const counts = { created: 0, wrote: 0, read: 0, untouched: 0 };
const started = Date.now();
let heapAtMark = 0;
let maxHeld = 0;

async function expectStatus(response, what) {
  if (response.statusCode !== 200) {
    console.error(`soak: ${what} answered ${response.statusCode}: ${response.body.slice(0, 200)}`);
    await finish();
    process.exit(1);
  }
}

async function finish() {
  agent.destroy();
  await app.close();
}

for (let i = 1; i <= TOTAL; i++) {
  const kind = i <= MARK ? 0 : i % 5; // 0, 1: new visitor; 2: returning writer; 3: returning reader; 4: untouched
  if (kind === 4) {
    await expectStatus(await get('/untouched'), 'GET /untouched');
    counts.untouched++;
  } else if (kind <= 1 || recentCount === 0) {
    const response = await get('/visit');
    await expectStatus(response, 'GET /visit');
    const sid = sidOf(response);
    if (sid === undefined) {
      console.error('soak: a new visitor got no session cookie');
      await finish();
      process.exit(1);
    }
    recent[recentCount++ % RECENT] = sid;
    counts.created++;
  } else {
    const cookie = recent[(i * 7919) % Math.min(recentCount, RECENT)];
    const url = kind === 2 ? '/visit' : '/read';
    await expectStatus(await get(url, cookie), `GET ${url}`);
    if (kind === 2) counts.wrote++;
    else counts.read++;
  }
  if (i % 1000 === 0) maxHeld = Math.max(maxHeld, store.size);
  if (i === MARK) heapAtMark = heapAfterGc();
}

const heapAtEnd = heapAfterGc();
const held = store.size;
maxHeld = Math.max(maxHeld, held);
const seconds = (Date.now() - started) / 1000;
await finish();

const growth = heapAtEnd / heapAtMark - 1;
const heapOk = growth <= MAX_GROWTH;
const storeOk = maxHeld <= MAX_SESSIONS;
console.log(`soak: ${TOTAL.toLocaleString('en')} requests in ${seconds.toFixed(1)} s (Fastify over loopback HTTP, MemoryStore maxSessions ${MAX_SESSIONS.toLocaleString('en')})`);
console.log(`  requests:        ${counts.created} created a session, ${counts.wrote} wrote to one, ${counts.read} only read, ${counts.untouched} never asked`);
console.log(`  heap after GC:   ${mb(heapAtMark)} at ${MARK.toLocaleString('en')} requests, ${mb(heapAtEnd)} at the end (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(1)}%, limit +${MAX_GROWTH * 100}%) ${heapOk ? 'ok' : 'FAIL'}`);
console.log(`  sessions held:   ${held.toLocaleString('en')} at the end, at most ${maxHeld.toLocaleString('en')} (limit ${MAX_SESSIONS.toLocaleString('en')}) ${storeOk ? 'ok' : 'FAIL'}`);
process.exit(heapOk && storeOk ? 0 : 1);
