import { Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Logger, Module } from '@nestjs/common';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { startDurableRedisServer, type DurableRedisServer } from '../support/durable-redis-server.js';
import { nodeRedisClient, nodeRedisVersions, type NodeRedisVersion } from '../support/redis-clients.js';
import { platforms, type Platform } from '../support/platforms.js';
import { startPostgresServer, type PostgresServer } from '../support/postgres-server.js';
import { onFreePort } from '../support/server-process.js';
import { get, type Answer } from './http-answers.js';

// Store faults under load: the store server is stopped abruptly while clients keep going, then
// started again. Each server runs on a free port the OS picks.

const SECRET = 'a-fault-test-secret-that-is-long-enough-0123';
const STORE_TIMEOUT = 1000;
/** No request may take longer than this, whatever the store does (storeTimeout plus a wide margin). */
const BOUND_MS = 5000;
/** A request with no answer after this long is recorded as hung (status 0) instead of stalling the test. */
const SESSIONS = 50;
const CLIENTS = 8;
const WARM_MS = 1500;
const OUTAGE_MS = 2000;
const AFTER_MS = 2000;
/** Safety bound on each client's loop; the phases above end the load long before it. */
const MAX_REQUESTS_PER_CLIENT = 20_000;
const RECOVERY_TRIES = 100;
const RECOVERY_PAUSE_MS = 100;

@Controller()
class FaultController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  /** Reads without changing anything: how the final check sees what the store kept. */
  @Get('peek')
  peek(@Session() session: Session) {
    return { visits: (session.get('visits') as number | undefined) ?? null };
  }

  @Get('untouched')
  untouched() {
    return { ok: true };
  }
}

function moduleWith(store: SessionStore) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store, storeTimeout: STORE_TIMEOUT })], controllers: [FaultController] })
  class FaultModule {}
  return FaultModule;
}

function visitsOf(answer: Answer): number {
  return (JSON.parse(answer.body) as { visits: number }).visits;
}

/** A store server this file runs itself, and how to build a store on it. */
interface Backend {
  readonly name: string;
  /** What a 503 body must never reveal about the back-end (its port is known once it is up). */
  readonly leak: RegExp;
  up(): Promise<void>;
  crash(): Promise<void>;
  restart(): Promise<void>;
  dispose(): Promise<void>;
  store(tag: string): Promise<{ store: SessionStore; close(): Promise<void> }>;
}

/** Redis, reached through the store's own ioredis client (`url`) or through a node-redis client set up as the docs say. */
function redisBackend(nodeRedis?: NodeRedisVersion): Backend {
  let server: DurableRedisServer | undefined;
  return {
    name: nodeRedis === undefined ? 'Redis' : `Redis through a ${nodeRedis.name} client`,
    get leak() {
      return new RegExp(`redis|ECONNREFUSED|${server?.port ?? 'redis'}`, 'i');
    },
    up: async () => {
      server = await startDurableRedisServer();
    },
    crash: () => server!.kill(),
    restart: () => server!.start(),
    dispose: async () => server?.dispose(),
    store: async (tag) => {
      const url = `redis://127.0.0.1:${server!.port}`;
      if (nodeRedis === undefined) {
        const store = new RedisStore({ url, prefix: `fault:${tag}:` });
        return { store, close: () => store.close() };
      }
      const client = await nodeRedisClient(nodeRedis, url);
      return { store: new RedisStore({ client: client.client, prefix: `fault:${tag}:` }), close: () => client.close() };
    },
  };
}

function postgresBackend(): Backend {
  let server: PostgresServer | undefined;
  return {
    name: 'PostgreSQL',
    get leak() {
      return new RegExp(`postgres|ECONNREFUSED|terminating|${server?.port ?? 'postgres'}`, 'i');
    },
    up: async () => {
      server = await onFreePort((port) => startPostgresServer(port));
    },
    crash: () => server!.stop(),
    restart: () => server!.start(),
    dispose: async () => server?.dispose(),
    store: async (tag) => {
      const pool = new pg.Pool({ connectionString: server!.connectionString, max: 10, connectionTimeoutMillis: 2000 });
      // Idle connections die with the server: a Pool without an 'error' listener would crash the process.
      pool.on('error', () => undefined);
      const store = new PostgresStore({ pool, tableName: `fault_${tag}`, sweepInterval: 0 });
      return {
        store,
        close: async () => {
          store.close();
          await pool.end();
        },
      };
    },
  };
}

interface Tracked {
  index: number;
  cookie: string;
  /** The value the session held when the outage began (written before the load). */
  written: number;
  /** The highest value a 200 answer reported: an acknowledged save. */
  acked: number;
}

interface Sample {
  path: '/count' | '/untouched';
  status: number;
  body: string;
  start: number;
  end: number;
}

async function scenario(backend: Backend, platform: Platform): Promise<void> {
  const errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  const logs = vi.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
  const { store, close } = await backend.store(platform.kind);
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS + 2 });
  let app: Awaited<ReturnType<Platform['create']>> | undefined;
  try {
    app = await platform.create(moduleWith(store));
    await app.app.listen(0, '127.0.0.1');
    const port = (app.server.address() as AddressInfo).port;
    const call = (path: string, cookie?: string) => get(agent, port, path, cookie);

    // 1. N sessions written through HTTP, with different values (1 to 3).
    const sessions: Tracked[] = [];
    for (let index = 0; index < SESSIONS; index++) {
      const first = await call('/count');
      expect(first.status, `writing session ${index}: ${first.body}`).toBe(200);
      const sid = first.setCookie.map((raw) => raw.split(';')[0]).find((pair) => pair.startsWith('sid='));
      expect(sid, 'the first /count sets the sid cookie').toBeDefined();
      let visits = visitsOf(first);
      for (let extra = 0; extra < index % 3; extra++) {
        const next = await call('/count', sid);
        expect(next.status).toBe(200);
        visits = visitsOf(next);
      }
      expect(visits).toBe(1 + (index % 3));
      sessions.push({ index, cookie: sid!, written: visits, acked: visits });
    }

    // 2. The load: each client works its own share of the sessions in turn (so each session's
    // value only grows, one request at a time), alternating /count and /untouched.
    const samples: Sample[] = [];
    const regressions: string[] = [];
    let stop = false;
    const clients = Array.from({ length: CLIENTS }, async (_, client) => {
      const mine = sessions.filter((s) => s.index % CLIENTS === client);
      for (let k = 0; !stop && k < MAX_REQUESTS_PER_CLIENT; k++) {
        const session = mine[Math.floor(k / 2) % mine.length];
        const path = k % 2 === 0 ? '/count' : '/untouched';
        const answer = await call(path, session.cookie);
        samples.push({ path, status: answer.status, body: answer.body, start: answer.start, end: answer.end });
        if (path === '/count' && answer.status === 200) {
          const visits = visitsOf(answer);
          if (!(visits > session.acked)) regressions.push(`session ${session.index} answered visits ${visits} after ${session.acked} had been acknowledged`);
          session.acked = Math.max(session.acked, visits);
        }
      }
    });
    const load = Promise.all(clients);
    let downAt: number;
    let restartAt: number;
    let upAt: number;
    try {
      await sleep(WARM_MS);
      await backend.crash();
      downAt = Date.now();
      await sleep(OUTAGE_MS);
      restartAt = Date.now();
      await backend.restart();
      upAt = Date.now();
      await sleep(AFTER_MS);
    } finally {
      stop = true; // also when stopping or starting the server failed: the clients end their loops
      await load;
    }

    // 3. Recovery without restarting the app: the first /count answered 200 once the store was back.
    const firstOk = samples.filter((s) => s.path === '/count' && s.status === 200 && s.start >= downAt).sort((a, b) => a.end - b.end)[0];
    let recoveredAt = firstOk?.end;
    for (let i = 0; recoveredAt === undefined && i < RECOVERY_TRIES; i++) {
      const probe = await call('/count', sessions[0].cookie);
      if (probe.status === 200) {
        recoveredAt = probe.end;
        sessions[0].acked = Math.max(sessions[0].acked, visitsOf(probe));
      } else await sleep(RECOVERY_PAUSE_MS);
    }

    // 4. What the store kept: every session written before the outage, at least at its last acknowledged value.
    const lost: string[] = [];
    for (const session of sessions) {
      const peek = await call('/peek', session.cookie);
      const visits = peek.status === 200 ? (JSON.parse(peek.body) as { visits: number | null }).visits : undefined;
      if (peek.status !== 200) lost.push(`session ${session.index}: /peek answered ${peek.status} ${peek.body}`);
      else if (visits === null || visits === undefined) lost.push(`session ${session.index}: missing (had ${session.written} before the outage)`);
      else if (visits < session.written) lost.push(`session ${session.index}: reset to ${visits} (had ${session.written} before the outage)`);
      else if (visits < session.acked) lost.push(`session ${session.index}: ${visits}, below the acknowledged ${session.acked}`);
    }
    const fresh = await call('/count');

    const outage = samples.filter((s) => s.start >= downAt && s.end <= restartAt);
    const outageCount = outage.filter((s) => s.path === '/count');
    const outageUntouched = outage.filter((s) => s.path === '/untouched');
    const latency = (list: Sample[]) => list.reduce((max, s) => Math.max(max, s.end - s.start), 0);
    const statuses = (list: Sample[]) => {
      const counts = new Map<number, number>();
      for (const s of list) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
      return Object.fromEntries(counts);
    };
    console.log(
      `[store faults] ${backend.name} on ${platform.name}: ${samples.length} requests from ${CLIENTS} clients on ${SESSIONS} sessions; ` +
        `store killed for ${restartAt - downAt} ms, then ${upAt - restartAt} ms to start again; while down: ${outage.length} requests, ` +
        `/count ${outageCount.filter((s) => s.status === 503).length}×503 of ${outageCount.length}, ` +
        `/untouched ${outageUntouched.filter((s) => s.status === 200).length}×200 of ${outageUntouched.length}, ` +
        `max latency ${latency(outage)} ms (whole run ${latency(samples)} ms); ` +
        `first /count 200 ${recoveredAt === undefined ? 'never' : `${recoveredAt - restartAt} ms after the restart began`}; ` +
        `${SESSIONS - lost.length}/${SESSIONS} sessions intact`,
    );

    // Nothing written before the outage is missing, reset or rolled back.
    expect(lost.length, `sessions lost or rolled back:\n${lost.slice(0, 5).join('\n')}`).toBe(0);
    expect(regressions.length, `answers below an acknowledged value:\n${regressions.slice(0, 5).join('\n')}`).toBe(0);

    // Never hangs, never a 500: every request got an answer within the bound.
    const slow = samples.filter((s) => s.status === 0 || s.end - s.start > BOUND_MS).map((s) => `${s.path} ${s.status} after ${s.end - s.start} ms: ${s.body}`);
    expect(slow.length, `requests without an answer within ${BOUND_MS} ms:\n${slow.slice(0, 5).join('\n')}`).toBe(0);
    expect(statuses(samples.filter((s) => s.path === '/untouched')), '/untouched never depends on the store').toEqual({ 200: samples.filter((s) => s.path === '/untouched').length });
    const countStatuses = statuses(samples.filter((s) => s.path === '/count'));
    expect(Object.keys(countStatuses).filter((status) => status !== '200' && status !== '503'), `/count statuses ${JSON.stringify(countStatuses)}`).toEqual([]);

    // While the store is away: /count is a 503 every time, that tells nothing about the back-end.
    expect(outageCount.length, 'the load kept running while the store was down').toBeGreaterThan(0);
    expect(outageUntouched.length).toBeGreaterThan(0);
    expect(statuses(outageCount), '/count while the store is down').toEqual({ 503: outageCount.length });
    expect(statuses(outageUntouched), '/untouched while the store is down').toEqual({ 200: outageUntouched.length });
    expect(outageCount.filter((s) => backend.leak.test(s.body)).map((s) => s.body).slice(0, 3), 'a 503 body names the back-end').toEqual([]);
    expect(errors.mock.calls.some((args) => /failed to (read|save|touch) a session/.test(String(args[0]))), 'the store failure is logged').toBe(true);

    // Back without restarting the app.
    expect(recoveredAt, `a /count answered 200 within ${RECOVERY_TRIES} tries after the restart`).toBeDefined();
    expect(fresh.status, `a new visitor after the outage: ${fresh.body}`).toBe(200);
  } finally {
    agent.destroy();
    try {
      await app?.close();
    } finally {
      await close();
      errors.mockRestore();
      logs.mockRestore();
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const backends = [
  { backend: redisBackend(), needs: 'redis-server on PATH' },
  ...nodeRedisVersions.map((version) => ({ backend: redisBackend(version), needs: 'redis-server on PATH' })),
  {
    backend: postgresBackend(),
    needs: 'PostgreSQL server binaries (initdb, pg_ctl) in $PG_BIN or /usr/lib/postgresql/<version>/bin, run as a non-root user or as root with a postgres OS user',
  },
];
const testedPlatforms = [platforms[0], platforms[2]];

describe.each(backends.map(({ backend, needs }) => ({ backend, needs, name: backend.name })))(
  '$name stopped abruptly under load and started again (needs $needs)',
  ({ backend }) => {
    beforeAll(() => backend.up());
    afterAll(() => backend.dispose());

    it.each(testedPlatforms.map((platform) => ({ platform, name: platform.name })))(
      'on $name: 503 while it is away, other routes serve, recovery without an app restart, no session lost',
      ({ platform }) => scenario(backend, platform),
      60_000,
    );
  },
);
