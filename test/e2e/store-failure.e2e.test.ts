import { Controller, Get, Logger, Module } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import type { SessionRecord, SessionStore } from '../../src/store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';
import { SECRET } from './app.fixture.js';

@Controller()
class OutageController {
  @Get('untouched')
  untouched() {
    return { ok: true };
  }

  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}

/** A store that never answers: what a wedged network looks like to the app. */
class SilentStore implements SessionStore {
  get(): Promise<SessionRecord | undefined> {
    return new Promise(() => undefined);
  }
  set(): Promise<void> {
    return new Promise(() => undefined);
  }
  patch(): Promise<void> {
    return new Promise(() => undefined);
  }
  touch(): Promise<void> {
    return new Promise(() => undefined);
  }
  destroy(): Promise<void> {
    return new Promise(() => undefined);
  }
}

function moduleWith(store: SessionStore, storeTimeout?: number) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store, storeTimeout })], controllers: [OutageController] })
  class OutageModule {}
  return OutageModule;
}

describe.each(platforms.map((platform) => ({ platform, name: platform.name })))(
  'a store that is down, on $name (needs redis-server on PATH; starts its own)',
  ({ platform }) => {
    let redis: RedisServer;
    let store: RedisStore;
    let t: TestApp;
    beforeAll(async () => {
      redis = await startRedisServer();
      store = new RedisStore({ url: `redis://127.0.0.1:${redis.port}`, prefix: 'outage:' });
      t = await platform.create(moduleWith(store, 3000));
    });
    afterAll(async () => {
      await t?.close();
      await store?.close();
      await redis?.stop();
    });
    afterEach(() => vi.restoreAllMocks());

    it('answers 503 within a bounded time while Redis is away, keeps other routes serving, and recovers by itself', async () => {
      const errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      const jar = new CookieJar();
      jar.take(await t.http().get('/count'));
      expect((await t.http().get('/count').set('Cookie', jar.header())).body).toEqual({ visits: 2 });

      await redis.stop();
      const started = Date.now();
      const down = await t.http().get('/count').set('Cookie', jar.header());
      expect(down.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(JSON.stringify(down.body)).not.toMatch(/redis|ECONNREFUSED/i);
      expect(errors.mock.calls.flat().map(String).join('\n')).toMatch(/failed to (read|save) a session/);
      const fresh = await t.http().get('/count');
      expect(fresh.status).toBe(503);
      expect((await t.http().get('/untouched')).status).toBe(200);

      await redis.restart();
      let recovered = 0;
      for (let i = 0; i < 50 && recovered !== 200; i++) {
        recovered = (await t.http().get('/count')).status;
        if (recovered !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(recovered).toBe(200);
    });
  },
);

describe.each(platforms)('a store that never answers, on $name', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await platform.create(moduleWith(new SilentStore(), 300));
  });
  afterAll(() => t.close());

  it('gets a 503 after storeTimeout instead of a hung request', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const res = await t.http().get('/count');
    expect(res.status).toBe(503);
    const jar = new CookieJar();
    jar.set('sid', 'x'.repeat(43) + '.' + 'y'.repeat(43));
    expect((await t.http().get('/untouched').set('Cookie', jar.header())).status).toBe(200);
    vi.restoreAllMocks();
  });
});
