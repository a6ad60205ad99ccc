import { Controller, Get, HttpCode, Module, Post } from '@nestjs/common';
import session from 'express-session';
import createMemoryStore from 'memorystore';
import { afterEach, describe, expect, it } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { fromExpressSessionStore, type ExpressSessionCompatibleStore } from '../../src/migration/express-session.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// An app on memorystore (an express-session store) through the adapter: it counts visits, and a
// logout is never undone by a slower request of the same session that saves after it.

const MemoryStore = createMemoryStore(session);

/** The /slow handler: it tells when it has loaded its session, and goes on once the test opens its gate. */
const slowHandler = { entered: () => {}, gate: Promise.resolve(), open: () => {} };
function holdSlowHandler(): Promise<void> {
  slowHandler.gate = new Promise<void>((resolve) => (slowHandler.open = resolve));
  return new Promise<void>((resolve) => (slowHandler.entered = resolve));
}

@Controller()
class VisitsController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits, id: session.id };
  }

  /** A request that started before the logout and changes the session after it (an upload, a slow API call). */
  @Get('slow')
  async slow(@Session() session: Session) {
    slowHandler.entered();
    await slowHandler.gate;
    session.set('note', 'written by a slow request');
    return { ok: true };
  }

  @Post('logout')
  @HttpCode(200)
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }
}

/** memorystore, whose first get() after `hold()` reads at once but answers only after `release()`: a slow read. */
function heldMemoryStore(store: ExpressSessionCompatibleStore) {
  let armed = false;
  let held = () => {};
  let release = () => {};
  const reached = new Promise<void>((resolve) => (held = resolve));
  const gate = new Promise<void>((resolve) => (release = resolve));
  const wrapper: ExpressSessionCompatibleStore = {
    get: (sid, callback) => {
      if (!armed) return store.get(sid, callback);
      armed = false;
      return store.get(sid, (error, value) => {
        held();
        void gate.then(() => callback(error, value));
      });
    },
    set: (sid, value, callback) => store.set(sid, value, callback),
    destroy: (sid, callback) => store.destroy(sid, callback),
  };
  return { wrapper, hold: () => void (armed = true), reached, release: () => release() };
}

/** What memorystore itself holds under `sid`. */
const stored = (store: ExpressSessionCompatibleStore, sid: string) =>
  new Promise<unknown>((resolve, reject) => store.get(sid, (error, value) => (error ? reject(new Error('memorystore get() failed', { cause: error })) : resolve(value))));

describe.each(platforms)('fromExpressSessionStore(memorystore) in an app, on $name', (platform) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    slowHandler.open();
    await t?.close();
    t = undefined;
  });

  async function start(store: ExpressSessionCompatibleStore): Promise<TestApp> {
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store: fromExpressSessionStore(store) })], controllers: [VisitsController] })
    class AppModule {}
    return (t = await platform.create(AppModule));
  }

  async function visitTwice(app: TestApp, jar: CookieJar): Promise<string> {
    jar.take(await app.http().get('/count'));
    const second = await app.http().get('/count').set('Cookie', jar.header());
    expect(second.body).toMatchObject({ visits: 2 });
    return (second.body as { id: string }).id;
  }

  it('counts visits, and a request that saves after the logout does not bring the session back', async () => {
    const memory = new MemoryStore({ checkPeriod: 60_000 });
    const app = await start(memory);
    const jar = new CookieJar();
    const id = await visitTwice(app, jar);
    expect(await stored(memory, id)).toMatchObject({ cookie: expect.any(Object), nestSessions: expect.any(String) });

    const entered = holdSlowHandler();
    const slow = app.http().get('/slow').set('Cookie', jar.header()).then((res) => res);
    await entered;
    const cookie = jar.header();
    jar.take(await app.http().post('/logout').set('Cookie', cookie).expect(200));
    slowHandler.open();
    expect((await slow).status).toBe(200);

    expect(await stored(memory, id)).toBeFalsy();
    const after = await app.http().get('/count').set('Cookie', cookie);
    expect(after.body).toMatchObject({ visits: 1 });
    expect((after.body as { id: string }).id).not.toBe(id);
  });

  it("a logout that arrives between a save's read and its write still wins", async () => {
    const memory = new MemoryStore({ checkPeriod: 60_000 });
    const { wrapper, hold, reached, release } = heldMemoryStore(memory);
    const app = await start(wrapper);
    const jar = new CookieJar();
    const id = await visitTwice(app, jar);

    const entered = holdSlowHandler();
    const slow = app.http().get('/slow').set('Cookie', jar.header()).then((res) => res);
    await entered; // its session is loaded
    hold(); // the read of its save answers late
    slowHandler.open();
    await reached;
    const logout = app.http().post('/logout').set('Cookie', jar.header()).then((res) => res);
    await new Promise((resolve) => setTimeout(resolve, 50)); // the logout's destroy waits behind the save
    release();
    expect((await slow).status).toBe(200);
    expect((await logout).status).toBe(200);

    expect(await stored(memory, id)).toBeFalsy();
    expect((await app.http().get('/count').set('Cookie', jar.header())).body).toMatchObject({ visits: 1 });
  });
});
