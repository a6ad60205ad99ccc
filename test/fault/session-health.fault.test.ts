import { Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { SessionHealthIndicator } from '../../src/health.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import type { SessionStore } from '../../src/stores/session-store.interface.js';
import { platforms, type Platform } from '../support/platforms.js';
import { startPostgresServer, type PostgresServer } from '../support/postgres-server.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { onFreePort, sleep } from '../support/server-process.js';
import { get, type Answer } from './http-answers.js';

// The health indicator against a real store server that is killed and started again: /health turns
// 503 while the server is away (naming the store, not the server), and 200 again once it is back,
// without restarting the app, in step with the routes that use a session.

const SECRET = 'a-health-fault-secret-that-is-long-enough-0';
const PING_TIMEOUT = 1000;
/** No health check may take longer than this (the ping timeout plus a wide margin). */
const BOUND_MS = 3000;
const TRIES = 100;
const PAUSE_MS = 100;

@Controller()
class AppController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly sessionHealth: SessionHealthIndicator,
  ) {}

  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.sessionHealth.isHealthy('sessions', { timeout: PING_TIMEOUT })]);
  }

  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}

function moduleWith(store: SessionStore) {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, store, storeTimeout: 1000 }), TerminusModule.forRoot({ logger: false })],
    controllers: [AppController],
    providers: [SessionHealthIndicator],
  })
  class HealthFaultModule {}
  return HealthFaultModule;
}

/** A store server this file runs, and a store on it. */
interface Backend {
  readonly name: string;
  readonly storeClass: string;
  /** What a health answer must never reveal about the server (its port is known once it is up). */
  readonly leak: RegExp;
  up(): Promise<void>;
  crash(): Promise<void>;
  restart(): Promise<void>;
  dispose(): Promise<void>;
  store(tag: string): { store: SessionStore; close(): Promise<void> };
}

function redisBackend(): Backend {
  let server: RedisServer | undefined;
  return {
    name: 'Redis',
    storeClass: 'RedisStore',
    get leak() {
      return new RegExp(`127\\.0\\.0\\.1|redis://|:${server?.port ?? 'none'}\\b`);
    },
    up: async () => {
      server = await startRedisServer();
    },
    crash: () => server!.stop(),
    restart: () => server!.restart(),
    dispose: async () => server?.stop(),
    store: (tag) => {
      const store = new RedisStore({ url: `redis://127.0.0.1:${server!.port}`, prefix: `health:${tag}:` });
      return { store, close: () => store.close() };
    },
  };
}

function postgresBackend(): Backend {
  let server: PostgresServer | undefined;
  return {
    name: 'PostgreSQL',
    storeClass: 'PostgresStore',
    get leak() {
      return new RegExp(`127\\.0\\.0\\.1|postgres://|:${server?.port ?? 'none'}\\b`);
    },
    up: async () => {
      server = await onFreePort((port) => startPostgresServer(port));
    },
    crash: () => server!.stop(),
    restart: () => server!.start(),
    dispose: async () => server?.dispose(),
    store: (tag) => {
      const pool = new pg.Pool({ connectionString: server!.connectionString, max: 4, connectionTimeoutMillis: 2000 });
      // Idle connections die with the server: a Pool without an 'error' listener would crash the process.
      pool.on('error', () => undefined);
      const store = new PostgresStore({ pool, tableName: `health_${tag}`, sweepInterval: 0 });
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

async function scenario(backend: Backend, platform: Platform): Promise<void> {
  const { store, close } = backend.store(platform.kind);
  const agent = new Agent({ keepAlive: true });
  let app: Awaited<ReturnType<Platform['create']>> | undefined;
  try {
    app = await platform.create(moduleWith(store));
    await app.app.listen(0, '127.0.0.1');
    const port = (app.server.address() as AddressInfo).port;
    const call = (path: string, cookie?: string) => get(agent, port, path, cookie);
    const answers: Answer[] = [];
    const health = async () => {
      const answer = await call('/health');
      answers.push(answer);
      return answer;
    };
    /** Asks /health until it answers `status`; the answer, or undefined after TRIES tries. */
    const healthUntil = async (status: number) => {
      for (let i = 0; i < TRIES; i++) {
        const answer = await health();
        if (answer.status === status) return answer;
        await sleep(PAUSE_MS);
      }
      return undefined;
    };

    const first = await health();
    expect(first.status, first.body).toBe(200);
    expect(JSON.parse(first.body).info.sessions).toEqual({ status: 'up', stores: { default: { store: backend.storeClass, status: 'up' } } });
    const counted = await call('/count');
    expect(counted.status).toBe(200);

    await backend.crash();
    const down = await healthUntil(503);
    expect(down, 'the health check turned 503 while the server was away').toBeDefined();
    const body = JSON.parse(down!.body);
    expect(body.status).toBe('error');
    expect(body.error.sessions.status).toBe('down');
    expect(body.error.sessions.stores.default).toMatchObject({ store: backend.storeClass, status: 'down', message: expect.any(String) });
    console.log(`[health] ${backend.name} on ${platform.name}, server down: ${JSON.stringify(body.error.sessions.stores.default)}`);
    expect(down!.body, 'the answer names the server').not.toMatch(backend.leak);
    // In step with the routes: a session route fails too.
    expect((await call('/count')).status).toBe(503);

    await backend.restart();
    const back = await healthUntil(200);
    expect(back, 'the health check answered 200 again once the server was back, without restarting the app').toBeDefined();
    expect(JSON.parse(back!.body).info.sessions.stores.default).toEqual({ store: backend.storeClass, status: 'up' });
    expect((await call('/count')).status).toBe(200);

    // Every health check answered, within the bound, with 200 or 503, and none named the server.
    const slow = answers.filter((a) => a.status === 0 || a.end - a.start > BOUND_MS).map((a) => `${a.status} after ${a.end - a.start} ms: ${a.body}`);
    expect(slow, `health checks without an answer within ${BOUND_MS} ms`).toEqual([]);
    expect(answers.filter((a) => a.status !== 200 && a.status !== 503).map((a) => `${a.status} ${a.body}`)).toEqual([]);
    expect(answers.filter((a) => backend.leak.test(a.body)).map((a) => a.body)).toEqual([]);
  } finally {
    agent.destroy();
    try {
      await app?.close();
    } finally {
      await close();
    }
  }
}

const backends = [
  { backend: redisBackend(), needs: 'redis-server on PATH' },
  { backend: postgresBackend(), needs: 'PostgreSQL server binaries (initdb, pg_ctl)' },
];
const testedPlatforms = [platforms[0], platforms[2]];

describe.each(backends.map(({ backend, needs }) => ({ backend, needs, name: backend.name })))('SessionHealthIndicator while $name is killed and started again (needs $needs)', ({ backend }) => {
  beforeAll(() => backend.up());
  afterAll(() => backend.dispose());

  it.each(testedPlatforms.map((platform) => ({ platform, name: platform.name })))(
    'on $name: up, down naming the store and not the server, up again without an app restart',
    ({ platform }) => scenario(backend, platform),
    60_000,
  );
});
