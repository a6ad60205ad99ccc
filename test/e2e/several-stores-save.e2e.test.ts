import { Controller, Get, Logger, Module, Param } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

// A request that changes sessions on several server-side stores writes them one after another, in
// the order of the configuration: a write that fails stops the writes after it and removes the
// sessions the request created before it; changes to sessions that existed before stay written.

@Controller()
class LedgerController {
  @Get('set/:value')
  set(@Session() account: Session, @Session('prefs') prefs: Session, @Session('cart') cart: Session, @Param('value') value: string) {
    account.set('balance', value);
    prefs.set('theme', value);
    cart.set('items', value);
    return { ok: true };
  }

  @Get('read')
  read(@Session() account: Session, @Session('prefs') prefs: Session, @Session('cart') cart: Session) {
    return { balance: account.get('balance') ?? null, theme: prefs.get('theme') ?? null, items: cart.get('items') ?? null };
  }
}

function ledger() {
  const stores = { account: new ControlledStore(), prefs: new ControlledStore(), cart: new ControlledStore() };
  @Module({
    imports: [
      SessionModule.forRoot({
        secret: SECRET,
        store: stores.account,
        sessions: { prefs: { store: stores.prefs }, cart: { store: stores.cart } },
      }),
    ],
    controllers: [LedgerController],
  })
  class LedgerModule {}
  return { stores, LedgerModule };
}

describe.each(platforms)('a request whose sessions live in several stores, on $name', (platform) => {
  afterEach(() => vi.restoreAllMocks());

  it('a failed write stops the writes after it: the response is a 503 and the later sessions keep their values', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const { stores, LedgerModule } = ledger();
    const t = await platform.create(LedgerModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/set/100'));
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ balance: '100', theme: '100', items: '100' });
      stores.prefs.failNext('patch');
      const failed = await t.http().get('/set/90').set('Cookie', jar.header());
      expect(failed.status).toBe(503);
      // The account's write came first and stays; the cart's came after the failure and never ran.
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ balance: '90', theme: '100', items: '100' });
      expect(stores.cart.count('patch')).toBe(0); // the first request created it; the failed one never wrote it
    } finally {
      await t.close();
    }
  });

  it('sessions the request created before the failure are removed again: nothing of the request is left in any store', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const { stores, LedgerModule } = ledger();
    const t = await platform.create(LedgerModule);
    try {
      stores.prefs.failNext('set');
      const failed = await t.http().get('/set/1');
      expect(failed.status).toBe(503);
      expect(failed.headers['set-cookie']).toBeUndefined();
      expect(stores.account.count('set')).toBe(1);
      expect(stores.account.count('destroy')).toBe(1);
      expect(stores.cart.count('set')).toBe(0);
      expect(stores.account.inner.size).toBe(0);
      expect(stores.cart.inner.size).toBe(0);
      // The next attempt works in full.
      const jar = new CookieJar();
      jar.take(await t.http().get('/set/2'));
      expect((await t.http().get('/read').set('Cookie', jar.header())).body).toEqual({ balance: '2', theme: '2', items: '2' });
    } finally {
      await t.close();
    }
  });
});
