import { Controller, Get, Logger, Module } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// A response that writes several sessions one after another: a session whose creation this very
// response has planned (its cookie is in the head) is not "a session whose cookie can no longer
// reach the browser" while it waits for its turn.

@Controller()
class PairController {
  @Get('start')
  start(@Session() account: Session) {
    account.set('balance', '1');
    return { ok: true };
  }

  /** Changes the account, starts a prefs session, and changes prefs again 30 ms later (work left behind). */
  @Get('pair')
  pair(@Session() account: Session, @Session('prefs') prefs: Session) {
    account.set('balance', '2');
    prefs.set('theme', 'first');
    setTimeout(() => prefs.set('theme', 'second'), 30);
    return { ok: true };
  }

  /** Two writes of the account: an explicit save() of step 1 (not awaited), then the response's of step 2, with prefs. */
  @Get('save-then-respond')
  saveThenRespond(@Session() account: Session, @Session('prefs') prefs: Session) {
    account.set('balance', 'step 1');
    void account.save();
    account.set('balance', 'step 2');
    prefs.set('theme', 'kept');
    return { ok: true };
  }

  @Get('read')
  read(@Session() account: Session, @Session('prefs') prefs: Session) {
    return { balance: account.get('balance') ?? null, theme: prefs.get('theme') ?? null };
  }
}

function pair() {
  const stores = { account: new ControlledStore(), prefs: new ControlledStore() };
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, store: stores.account, sessions: { prefs: { store: stores.prefs } } })],
    controllers: [PairController],
  })
  class PairModule {}
  return { stores, PairModule };
}

describe.each(platforms)('several sessions written in turn by one response, on $name', (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it("the response's save of several sessions lands after an explicit save() still in flight", async () => {
    const { stores, PairModule } = pair();
    const t = await platform.create(PairModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = stores.account.holdNextCall('patch'); // the explicit save's write reaches the store late
      const answer = t.http().get('/save-then-respond').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100));
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      jar.take(res);
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ balance: 'step 2', theme: 'kept' });
    } finally {
      await t.close();
    }
  });

  it('a change after the response to a session the response is about to create is saved', async () => {
    const warnings = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { stores, PairModule } = pair();
    const t = await platform.create(PairModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/start'));
      const release = stores.account.holdNextCall('patch'); // the account's write comes first and is slow
      const answer = t.http().get('/pair').set('Cookie', jar.header()).then((res) => res);
      await new Promise((resolve) => setTimeout(resolve, 100)); // prefs changed again meanwhile
      release();
      const res = await answer;
      expect(res.status).toBe(200);
      jar.take(res);
      expect(jar.get('prefs')).toBeDefined(); // the response did create prefs and named it in its head
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ balance: '2', theme: 'second' });
      expect(warnings.mock.calls.map(String).filter((line) => line.includes("can no longer reach the browser"))).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
