import { Controller, Get, Logger, Module, Query } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';
import { csrfModule } from './csrf.fixture.js';

// Promises of the write queue that no other test holds to: a destroy() before the response waits
// for a creation in flight; a change after the response to a session whose creation is in flight is
// saved; a creation that timed out in a save of several sessions is removed again; the readable CSRF
// cookie follows `cookie.secure: false`.

@Controller()
class GuardController {
  /** Creates the session by an explicit save() (not awaited), then signs out at once. */
  @Get('create-then-destroy')
  async createThenDestroy(@Session() session: Session) {
    session.set('user', 'ada');
    void session.save();
    await session.destroy();
    return { ok: true };
  }

  /** A new session (created by the response), changed again 30 ms after the response, while its creation is in flight. */
  @Get('new-then-late-change')
  newThenLateChange(@Session() session: Session) {
    session.set('step', 'first');
    setTimeout(() => session.set('step', 'second'), 30);
    return { ok: true };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { step: session.get('step') ?? null };
  }
}

/** A schema that answers with a promise: prefs' theme must not be 'refused'. */
const asyncPrefs = z.object({ theme: z.string().optional().refine(async (theme) => theme !== 'refused', 'refused') });

@Controller()
class PairGuardController {
  @Get('pair-theme')
  pairTheme(@Session() account: Session, @Session('prefs') prefs: Session, @Query('balance') balance: string, @Query('theme') theme: string) {
    account.set('balance', balance);
    prefs.set('theme', theme);
    return { ok: true };
  }

  @Get('read-pair')
  readPair(@Session() account: Session, @Session('prefs') prefs: Session) {
    return { balance: account.get('balance') ?? null, theme: prefs.get('theme') ?? null };
  }

  @Get('pair')
  pair(@Session() account: Session, @Session('prefs') prefs: Session) {
    account.set('balance', '1');
    prefs.set('theme', 'dark');
    return { ok: true };
  }
}

describe.each(platforms)('write queue promises, on $name', (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it('a destroy() made before the response waits for the creation still in flight: the session never comes back', async () => {
    const store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [GuardController] })
    class GuardModule {}
    const t = await platform.create(GuardModule);
    try {
      const release = store.holdNextCall('set'); // the creation reaches the store late, as on a pool
      const answer = t.http().get('/create-then-destroy').then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 80));
      release();
      expect((await answer).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(store.calls.filter((call) => call === 'set' || call === 'destroy')).toEqual(['set', 'destroy']);
      expect(store.inner.size).toBe(0);
    } finally {
      await t.close();
    }
  });

  it("a change after the response to the session it is creating is saved once the creation has landed", async () => {
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [GuardController] })
    class GuardModule {}
    const t = await platform.create(GuardModule);
    try {
      const release = store.holdNextAnswer('set'); // the creation lands, its answer comes late
      const answer = t.http().get('/new-then-late-change').then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100)); // changed meanwhile
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      const jar = new CookieJar();
      jar.take(res);
      await vi.waitFor(() => expect(store.count('patch')).toBe(1));
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ step: 'second' });
    } finally {
      await t.close();
    }
  });

  it('a creation that timed out in a save of several sessions is removed again, with those created before it', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const stores = { account: new ControlledStore(), prefs: new ControlledStore() };
    @Module({
      imports: [SessionModule.forRoot({ secret: SECRET, store: stores.account, storeTimeout: 150, sessions: { prefs: { store: stores.prefs } } })],
      controllers: [PairGuardController],
    })
    class GuardModule {}
    const t = await platform.create(GuardModule);
    try {
      const release = stores.prefs.holdNextAnswer('set'); // prefs' creation lands, but no answer comes in time
      const res = await t.http().get('/pair');
      expect(res.status).toBe(503);
      release();
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(stores.account.inner.size).toBe(0);
      expect(stores.prefs.inner.size).toBe(0);
    } finally {
      await t.close();
    }
  });

  it("a schema answering with a promise that refuses one session's save stops the writes of the sessions before it too", async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const stores = { account: new ControlledStore(), prefs: new ControlledStore() };
    @Module({
      imports: [SessionModule.forRoot({ secret: SECRET, store: stores.account, sessions: { prefs: { store: stores.prefs, schema: asyncPrefs } } })],
      controllers: [PairGuardController],
    })
    class GuardModule {}
    const t = await platform.create(GuardModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/pair-theme?balance=1&theme=dark'));
      const refused = await t.http().get('/pair-theme?balance=2&theme=refused').set('Cookie', jar.header());
      expect(refused.status).toBe(500);
      expect((await t.http().get('/read-pair').set('Cookie', jar.header())).body).toEqual({ balance: '1', theme: 'dark' });
    } finally {
      await t.close();
    }
  });

  it('the readable CSRF cookie has no Secure where the session cookie is configured without it', async () => {
    const t = await platform.create(csrfModule({ cookie: { secure: false }, csrf: { cookie: true } }));
    try {
      const cookies = setCookies((await t.http().get('/form').set('X-Forwarded-Proto', 'https')).headers);
      expect(cookies.find((each) => each.name === 'sid')?.attributes.secure).toBeUndefined();
      expect(cookies.find((each) => each.name === 'XSRF-TOKEN')?.attributes.secure).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});
