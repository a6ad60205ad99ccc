import { Controller, Get, HttpCode, Module, Post } from '@nestjs/common';
import session from 'express-session';
import createMemoryStore from 'memorystore';
import { afterEach, describe, expect, it } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { fromExpressSessionStore, type ExpressSessionCompatibleStore } from '../../src/migration/express-session.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type Platform, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// Apps on an express-session store through fromExpressSessionStore(): what a user sees when the
// store fails one logout, and when one of its callbacks is lost.

const MemoryStore = createMemoryStore(session);

@Controller()
class VisitsController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Post('logout')
  @HttpCode(200)
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }
}

/** The store an instance is given: memorystore (shared by the instances), whose next destroy() or set() can be made to fail or to never answer. */
function faultyStore(store: ExpressSessionCompatibleStore) {
  const faults = { failDestroys: 0, loseSets: 0 };
  const wrapper: ExpressSessionCompatibleStore = {
    get: (sid, callback) => store.get(sid, callback),
    set: (sid, value, callback) => {
      if (faults.loseSets > 0) {
        faults.loseSets--;
        return undefined; // the command is lost: no write, no callback (a dropped connection)
      }
      return store.set(sid, value, callback);
    },
    destroy: (sid, callback) => {
      if (faults.failDestroys > 0) {
        faults.failDestroys--;
        setImmediate(() => callback?.(new Error('connection lost')));
        return undefined;
      }
      return store.destroy(sid, callback);
    },
  };
  return { wrapper, faults };
}

const opened: TestApp[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((app) => app.close()));
});

async function start(platform: Platform, store: ExpressSessionCompatibleStore): Promise<TestApp> {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store: fromExpressSessionStore(store) })], controllers: [VisitsController] })
  class AppModule {}
  const app = await platform.create(AppModule);
  opened.push(app);
  return app;
}

describe.each([platforms[0], platforms[2]])('fromExpressSessionStore: a logout the store failed, on $name', (platform) => {
  it('a retried logout that answers 200 has ended the session on every instance', async () => {
    const memory = new MemoryStore({ checkPeriod: 60_000 });
    const { wrapper, faults } = faultyStore(memory);
    const here = await start(platform, wrapper);
    const there = await start(platform, memory); // another instance of the app, on the same store
    const jar = new CookieJar();
    jar.take(await here.http().get('/count'));
    jar.take(await here.http().get('/count').set('Cookie', jar.header()));
    const cookie = jar.header();

    faults.failDestroys = 1;
    expect((await here.http().post('/logout').set('Cookie', cookie)).status).toBe(503);
    // The user tries again, and is told it worked.
    expect((await here.http().post('/logout').set('Cookie', cookie)).status).toBe(200);

    // A stolen copy of the cookie must be worth nothing now, on any instance.
    const stolen = await there.http().get('/count').set('Cookie', cookie);
    expect(stolen.body, 'the session a 200 logout ended is still served by another instance').toEqual({ visits: 1 });
  });
});

describe('fromExpressSessionStore with its default timeout and the default storeTimeout, on express', () => {
  it("one lost callback fails only the request whose call it was, not the session's next request", async () => {
    const memory = new MemoryStore({ checkPeriod: 60_000 });
    const { wrapper, faults } = faultyStore(memory);
    const app = await start(platforms[0], wrapper);
    const jar = new CookieJar();
    jar.take(await app.http().get('/count'));
    jar.take(await app.http().get('/count').set('Cookie', jar.header()));

    faults.loseSets = 1;
    const started = Date.now();
    const lost = app.http().get('/count').set('Cookie', jar.header()).then((res) => res);
    await new Promise((resolve) => setTimeout(resolve, 100)); // its save has read the session and sent the lost write
    // The store answers every call of this request at once.
    const next = await app.http().get('/count').set('Cookie', jar.header());
    const waited = Date.now() - started;
    expect((await lost).status).toBe(503);
    expect({ status: next.status, waitedUnderStoreTimeout: waited < 5_000 }).toEqual({ status: 200, waitedUnderStoreTimeout: true });
  }, 30_000);
});
