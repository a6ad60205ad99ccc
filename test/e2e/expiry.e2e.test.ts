import { Controller, Get, Module } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, Session, SessionModule, type SessionModuleOptions } from '../../src/index.js';
import { shiftableClock } from '../support/clock.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

@Controller()
class ExpiryController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { visits: session.get('visits') ?? null, expiresAt: session.expiresAt.getTime() };
  }

  @Get('remember')
  remember(@Session() session: Session) {
    session.set('visits', 1);
    session.setMaxAge(2 * HOUR);
    return {};
  }
}

function moduleWith(options: SessionModuleOptions) {
  @Module({ imports: [SessionModule.forRoot(options)], controllers: [ExpiryController] })
  class ExpiryModule {}
  return ExpiryModule;
}

describe.each(platforms)('expiry on $name', (platform) => {
  let t: TestApp;
  let clock: ReturnType<typeof shiftableClock>;
  const store = new MemoryStore({ sweepInterval: 0 });
  const writes: string[] = [];
  const set = store.set.bind(store);
  const patch = store.patch.bind(store);
  const touch = store.touch.bind(store);
  store.set = (id, record) => (writes.push('set'), set(id, record));
  store.patch = (id, p) => (writes.push('patch'), patch(id, p));
  store.touch = (id, expiresAt) => (writes.push('touch'), touch(id, expiresAt));

  beforeAll(async () => {
    t = await platform.create(moduleWith({ secret: SECRET, store, idleTimeout: 30 * MINUTE, absoluteTimeout: 2 * HOUR, cookie: { maxAge: undefined } }));
  });
  afterAll(() => t.close());
  afterEach(() => clock?.restore());

  const get = (path: string, jar: CookieJar) => {
    const header = jar.header();
    return header ? t.http().get(path).set('Cookie', header) : t.http().get(path);
  };

  it('an idle session expires after idleTimeout, on the server', async () => {
    clock = shiftableClock();
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    clock.advance(29 * MINUTE);
    expect((await get('/read', jar)).body.visits).toBe(1);
    clock.advance(31 * MINUTE);
    expect((await get('/read', jar)).body.visits).toBeNull();
  });

  it('activity slides the idle timeout', async () => {
    clock = shiftableClock();
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    for (let i = 0; i < 4; i++) {
      clock.advance(20 * MINUTE);
      expect((await get('/read', jar)).body.visits).toBe(1);
    }
  });

  it('read-only requests touch the store at most once per tenth of the idle timeout', async () => {
    clock = shiftableClock();
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    writes.length = 0;
    for (let i = 0; i < 5; i++) await get('/read', jar);
    expect(writes).toEqual([]);
    clock.advance(4 * MINUTE);
    await get('/read', jar);
    await get('/read', jar);
    expect(writes).toEqual(['touch']);
  });

  it('the absolute timeout ends a session whatever its activity (a replayed cookie gets nothing)', async () => {
    clock = shiftableClock();
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    for (let i = 0; i < 6; i++) {
      clock.advance(18 * MINUTE);
      expect((await get('/count', jar)).body.visits).toBe(i + 2);
    }
    clock.advance(18 * MINUTE); // 2 h 6 min after creation, 18 min after the last request
    expect((await get('/read', jar)).body.visits).toBeNull();
  });

  it('setMaxAge() is kept with the session: the next requests keep the persistent cookie and its lifetime', async () => {
    clock = shiftableClock();
    const jar = new CookieJar();
    const [first] = jar.take(await get('/remember', jar));
    expect(Number(first.attributes['max-age'])).toBe(2 * 60 * 60);
    clock.advance(45 * MINUTE); // past idleTimeout, within the session's own max age
    const next = await get('/count', jar);
    expect(next.body.visits).toBe(2);
    const [again] = setCookies(next.headers);
    // Capped by the absolute timeout: 2 h after creation, 45 min of which have passed.
    expect(Number(again.attributes['max-age'])).toBe(75 * 60);
  });
});
