import { Controller, Get, Module, Query } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { afterEach, describe, expect, it } from 'vitest';
import { CookieStore, MemoryStore, SessionModule, type SessionModuleOptions } from '../../src/index.js';
import { SessionHealthIndicator } from '../../src/health.js';
import type { SessionStore } from '../../src/stores/session-store.interface.js';
import { ControlledStore } from '../support/controlled-store.js';
import { platforms, type TestApp } from '../support/platforms.js';

// The health indicator in a real app: TerminusModule's HealthCheckService answers GET /health with
// 200 or 503 and terminus's JSON, whatever the session stores do.

const SECRET = 'a-health-test-secret-that-is-long-enough-01';
const COOKIE_KEY = 'a-cookie-store-key-that-is-long-enough-0123';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly sessionHealth: SessionHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(@Query('timeout') timeout?: string, @Query('only') only?: string) {
    const options = { timeout: timeout === undefined ? undefined : Number(timeout), sessions: only === undefined ? undefined : only.split(',') };
    return this.health.check([() => this.sessionHealth.isHealthy('sessions', options)]);
  }
}

function appModule(options: SessionModuleOptions) {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, ...options }), TerminusModule.forRoot({ logger: false })],
    controllers: [HealthController],
    providers: [SessionHealthIndicator],
  })
  class HealthAppModule {}
  return HealthAppModule;
}

/** A store of the app's own, without `ping()`. */
class PlainStore implements SessionStore {
  private readonly inner = new MemoryStore({ sweepInterval: 0 });
  get(id: string) {
    return this.inner.get(id);
  }
  set(id: string, record: Parameters<MemoryStore['set']>[1]) {
    return this.inner.set(id, record);
  }
  patch(id: string, patch: Parameters<MemoryStore['patch']>[1]) {
    return this.inner.patch(id, patch);
  }
  touch(id: string, expiresAt: number) {
    return this.inner.touch(id, expiresAt);
  }
  destroy(id: string) {
    return this.inner.destroy(id);
  }
}

describe.each(platforms)('SessionHealthIndicator on $name', (platform) => {
  let app: TestApp | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  /** The default session on a ControlledStore, `audit` on a store without ping(), `prefs` in a cookie. */
  async function start(store = new ControlledStore()) {
    app = await platform.create(
      appModule({
        store,
        sessions: { audit: { store: new PlainStore() }, prefs: { store: new CookieStore({ secret: COOKIE_KEY }) } },
      }),
    );
    return { store, http: app.http };
  }

  it('answers 200 with every store up, a store without ping() as unchecked, and cookie-stored sessions left out', async () => {
    const { store, http } = await start();
    const res = await http().get('/health').expect(200);
    expect(res.body).toEqual({
      status: 'ok',
      info: {
        sessions: {
          status: 'up',
          stores: {
            default: { store: 'ControlledStore', status: 'up' },
            audit: { store: 'PlainStore', status: 'unchecked', message: 'the store has no ping()' },
          },
        },
      },
      error: {},
      details: expect.any(Object),
    });
    expect(store.count('ping')).toBe(1);
  });

  it('answers 503 naming the store that failed and why, without its address', async () => {
    const { store, http } = await start();
    store.failNext('ping');
    const res = await http().get('/health').expect(503);
    expect(res.body.status).toBe('error');
    expect(res.body.error.sessions).toEqual({
      status: 'down',
      stores: {
        default: { store: 'ControlledStore', status: 'down', message: 'ping refused: connect ECONNREFUSED <address> (the test store)' },
        audit: { store: 'PlainStore', status: 'unchecked', message: 'the store has no ping()' },
      },
    });
    // The store's error named 10.1.2.3:6379: a health endpoint is often public.
    expect(res.text).not.toMatch(/10\.1\.2\.3|6379/);
    // Back up at the next check.
    await http().get('/health').expect(200);
  });

  it('answers 503 within the timeout when the store hangs', async () => {
    const store = new ControlledStore();
    const { http } = await start(store);
    const release = store.holdNextAnswer('ping');
    const started = Date.now();
    const res = await http().get('/health?timeout=150').expect(503);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(res.body.error.sessions.stores.default).toEqual({ store: 'ControlledStore', status: 'down', message: 'no answer within 150 ms' });
    release();
  });

  it('waits for storeTimeout by default', async () => {
    const store = new ControlledStore();
    app = await platform.create(appModule({ store, storeTimeout: 200 }));
    const release = store.holdNextAnswer('ping');
    const res = await app.http().get('/health').expect(503);
    expect(res.body.error.sessions.stores.default.message).toBe('no answer within 200 ms');
    release();
  });

  it('checks only the sessions named in `sessions`: a failing store of another session does not take the app down', async () => {
    const { store, http } = await start();
    store.failNext('ping');
    const res = await http().get('/health?only=audit').expect(200);
    expect(res.body.info.sessions).toEqual({ status: 'up', stores: { audit: { store: 'PlainStore', status: 'unchecked', message: 'the store has no ping()' } } });
    expect(store.count('ping')).toBe(0);
  });

  it('pings a store shared by several sessions once, and reports it for each', async () => {
    const shared = new ControlledStore();
    app = await platform.create(appModule({ store: shared, sessions: { admin: { store: shared, cookie: { name: 'admin' } } } }));
    shared.failNext('ping');
    const res = await app.http().get('/health').expect(503);
    const down = { store: 'ControlledStore', status: 'down', message: 'ping refused: connect ECONNREFUSED <address> (the test store)' };
    expect(res.body.error.sessions.stores).toEqual({ default: down, admin: down });
    expect(shared.count('ping')).toBe(1);
  });

  it('answers 200 for an app whose sessions are all in cookies: nothing to check', async () => {
    app = await platform.create(appModule({ store: new CookieStore({ secret: COOKIE_KEY }) }));
    const res = await app.http().get('/health').expect(200);
    expect(res.body.info).toEqual({ sessions: { status: 'up', stores: {} } });
  });
});

describe('SessionHealthIndicator options', () => {
  it('refuses a timeout that is not a positive number of ms, and a session that is not configured', async () => {
    const app = await platforms[0].create(appModule({ store: new ControlledStore() }));
    try {
      const indicator = app.app.get(SessionHealthIndicator);
      await expect(indicator.isHealthy('sessions', { timeout: 0 })).rejects.toThrow('SessionHealthIndicator: timeout must be a number of ms from 1 to 2147483647, such as 1000; got 0');
      await expect(indicator.isHealthy('sessions', { sessions: ['nope'] })).rejects.toThrow("No session named 'nope' is configured");
    } finally {
      await app.close();
    }
  });
});
