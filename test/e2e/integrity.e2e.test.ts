import { Controller, Get, Logger, Module, Param } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  CookieStore,
  Flash,
  MemoryStore,
  Session,
  SessionConfigError,
  SessionModule,
  type SessionModuleOptions,
} from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { generateSessionId, SessionIdSigner } from '../../src/session/session-id.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';

const OTHER_SECRET = 'another-test-secret-that-is-long-enough-9876543210';

/** What a handler caught, as the client sees it. */
function caught(work: () => void): { error: string | null; path?: string; size?: number } {
  try {
    work();
    return { error: null };
  } catch (error) {
    const e = error as Error & { path?: string; size?: number };
    return { error: e.name, path: e.path, size: e.size };
  }
}

@Controller()
class IntegrityController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('prefs')
  prefs(@Session('prefs') prefs: Session) {
    return { isNew: prefs.isNew, data: prefs.toJSON() };
  }

  @Get('prefs/set')
  setPrefs(@Session('prefs') prefs: Session) {
    prefs.set('theme', 'dark');
    return {};
  }

  @Get('crumbs')
  crumbs(@Session('crumbs') crumbs: Session) {
    return { isNew: crumbs.isNew, data: crumbs.toJSON() };
  }

  @Get('max-age/:value')
  maxAge(@Session() session: Session, @Param('value') value: string) {
    return caught(() => session.setMaxAge(Number(value)));
  }

  @Get('unserialisable/:kind')
  unserialisable(@Session() session: Session, @Param('kind') kind: string) {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const value = kind === 'circular' ? circular : kind === 'bigint' ? 10n : { toJSON: () => { throw new Error('no'); } };
    const result = caught(() => session.set('bad', value));
    return { ...result, has: session.has('bad') };
  }

  @Get('bigint-uncaught')
  bigintUncaught(@Session() session: Session) {
    session.set('bad', 10n); // a mistake nobody catches
    return {};
  }

  @Get('circular-in-place')
  circularInPlace(@Session() session: Session) {
    const cart = (session.get('cart') as Record<string, unknown> | undefined) ?? {};
    if (!session.has('cart')) session.set('cart', cart);
    cart.self = cart; // found only when the session is saved
    return { ok: true };
  }

  @Get('cookie/fill/:bytes')
  fill(@Session('crumbs') crumbs: Session, @Param('bytes') bytes: string) {
    return caught(() => crumbs.set('filler', 'x'.repeat(Number(bytes))));
  }

  @Get('cookie/flash/:bytes')
  flashGrow(@Flash('crumbs') flash: Flash, @Session('crumbs') crumbs: Session, @Param('bytes') bytes: string) {
    const result = caught(() => flash.add('info', 'y'.repeat(Number(bytes))));
    void crumbs;
    return { ...result, flash: flash.peek('info').length };
  }

  @Get('cookie/remember')
  rememberCrumbs(@Session('crumbs') crumbs: Session) {
    return caught(() => crumbs.setMaxAge(30 * 24 * 3600 * 1000));
  }

  @Get('cookie/grow-in-place/:bytes')
  growInPlace(@Session() session: Session, @Session('crumbs') crumbs: Session, @Param('bytes') bytes: string) {
    session.set('server', 'changed');
    const list = (crumbs.get('list') as string[] | undefined) ?? [];
    if (!crumbs.has('list')) crumbs.set('list', list);
    list.push('z'.repeat(Number(bytes))); // no set(): found only when the session is saved
    return { ok: true };
  }
}

describe.each(platforms)('what the README promises, on $name', (platform) => {
  let t: TestApp;
  const shared = new MemoryStore();

  beforeAll(async () => {
    @Module({
      imports: [
        SessionModule.forRoot({
          secret: SECRET,
          store: shared,
          sessions: {
            prefs: { store: shared, cookie: { name: 'prefs', maxAge: 365 * 24 * 3600 * 1000 } },
            crumbs: { store: new CookieStore({ secret: SECRET }), cookie: { name: 'crumbs' } },
          },
        }),
      ],
      controllers: [IntegrityController],
    })
    class IntegrityModule {}
    t = await platform.create(IntegrityModule);
  });
  afterAll(() => t.close());
  afterEach(() => vi.restoreAllMocks());

  const get = (path: string, jar?: CookieJar) => {
    const req = t.http().get(path);
    const header = jar?.header();
    return header ? req.set('Cookie', header) : req;
  };

  it("a session's cookie sent under another session's name is no session there, though both share a store and a secret", async () => {
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    const sid = jar.get('sid')!;
    const swapped = new CookieJar();
    swapped.set('prefs', sid);
    expect((await get('/prefs', swapped)).body).toEqual({ isNew: true, data: {} });
    // And the other way round: a prefs cookie is no login session.
    const prefsJar = new CookieJar();
    prefsJar.take(await get('/prefs/set', prefsJar));
    const asSid = new CookieJar();
    asSid.set('sid', prefsJar.get('prefs')!);
    expect((await get('/count', asSid)).body).toEqual({ visits: 1 });
  });

  it("a stored record of another named session is no session, even under a genuine signature", async () => {
    const signer = new SessionIdSigner([SECRET], 'default');
    const record = (session?: string) => ({ data: { visits: '41' }, meta: session === undefined ? { createdAt: Date.now() } : { createdAt: Date.now(), session }, expiresAt: Date.now() + 60_000 });
    const [theirs, ours] = [generateSessionId(), generateSessionId()];
    shared.set(theirs, record('prefs'));
    shared.set(ours, record());
    const jar = new CookieJar();
    jar.set('sid', signer.sign(theirs));
    expect((await get('/count', jar)).body).toEqual({ visits: 1 });
    jar.set('sid', signer.sign(ours)); // the control: the same record, the default session's own
    expect((await get('/count', jar)).body).toEqual({ visits: 42 });
  });

  it('setMaxAge() refuses fractions, zero and lifetimes past 400 days with a typed error naming the bound', async () => {
    for (const value of ['0.5', '0', '-1', '1e20', String(401 * 24 * 3600 * 1000)]) {
      expect((await get(`/max-age/${value}`)).body).toEqual({ error: 'SessionValidationError', path: 'maxAge' });
    }
    expect((await get(`/max-age/${400 * 24 * 3600 * 1000}`)).body).toEqual({ error: null });
  });

  it.each(['circular', 'bigint', 'throwing-toJSON'])('set() refuses a %s value at once, and leaves the session as it was', async (kind) => {
    const res = await get(`/unserialisable/${kind}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ error: 'SessionValidationError', path: 'bad', has: false });
  });

  it('a value refused by set() and not caught answers 500 and is logged, naming the key', async () => {
    const errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const res = await get('/bigint-uncaught');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ statusCode: 500, message: 'Internal Server Error' });
    expect(errors.mock.calls.flat().map(String).join('\n')).toMatch(/session.set\('bad'\)/);
  });

  it('a value changed in place into something JSON cannot hold answers 500, writes nothing and sends no cookie', async () => {
    const errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const before = shared.size;
    const res = await get('/circular-in-place');
    expect(res.status).toBe(500);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.body).toEqual({ statusCode: 500, message: 'Internal Server Error' });
    expect(shared.size).toBe(before);
    expect(errors.mock.calls.flat().map(String).join('\n')).toMatch(/cannot be stored as JSON/);
    expect((await get('/count')).status).toBe(200); // the app goes on
  });

  it('flash.add() that would push a cookie-stored session past the cookie limit throws SessionTooLargeError at once, and keeps the session as it was', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const jar = new CookieJar();
    const filled = await get('/cookie/fill/2500', jar);
    expect(filled.body).toEqual({ error: null });
    jar.take(filled);
    const res = await get('/cookie/flash/2000', jar);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ error: 'SessionTooLargeError', flash: 0 });
    expect(res.body.size).toBeGreaterThan(4096);
  });

  it('setMaxAge() that would push a cookie-stored session past the limit throws SessionTooLargeError at once', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const jar = new CookieJar();
    // Find the largest value that still fits, then ask for the few bytes a Max-Age adds.
    let fits = 1000;
    let over = 4096;
    while (over - fits > 1) {
      const middle = Math.floor((fits + over) / 2);
      const res = await get(`/cookie/fill/${middle}`, new CookieJar());
      if (res.body.error === null) fits = middle;
      else over = middle;
    }
    jar.take(await get(`/cookie/fill/${fits}`, jar));
    expect((await get('/cookie/remember', jar)).body).toMatchObject({ error: 'SessionTooLargeError' });
  });

  it('a cookie-stored value grown in place past the limit answers 500 with nothing written, on any session of the request', async () => {
    const errors = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    const sid = jar.get('sid')!;
    const res = await get('/cookie/grow-in-place/5000', jar);
    expect(res.status).toBe(500);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(errors.mock.calls.flat().map(String).join('\n')).toMatch(/over the 4096-byte limit/);
    const record = shared.get(sid.split('.')[0]);
    expect(record?.data.server).toBeUndefined(); // the server-side session of the same request was not written either
  });
});

describe('two cookie stores sharing a secret', () => {
  it.each(platforms)('a value sealed for one session opens to nothing in the other, on $name', async (platform) => {
    @Controller()
    class TwoCookies {
      @Get('a')
      a(@Session() session: Session) {
        session.set('who', 'a');
        return { isNew: session.isNew, data: session.toJSON() };
      }
      @Get('b')
      b(@Session('b') session: Session) {
        return { isNew: session.isNew, data: session.toJSON() };
      }
    }
    @Module({
      imports: [
        SessionModule.forRoot({
          secret: SECRET,
          store: new CookieStore({ secret: OTHER_SECRET }),
          sessions: { b: { store: new CookieStore({ secret: OTHER_SECRET }), cookie: { name: 'b' } } },
        }),
      ],
      controllers: [TwoCookies],
    })
    class TwoCookiesModule {}
    const t = await platform.create(TwoCookiesModule);
    try {
      const jar = new CookieJar();
      jar.take(await t.http().get('/a'));
      const swapped = new CookieJar();
      swapped.set('b', jar.get('sid')!);
      expect((await t.http().get('/b').set('Cookie', swapped.header())).body).toEqual({ isNew: true, data: {} });
    } finally {
      await t.close();
    }
  });
});

describe('configuration mistakes found at startup', () => {
  const start = async (options: SessionModuleOptions, controllers: (new () => unknown)[] = []) => {
    @Module({ imports: [SessionModule.forRoot(options)], controllers })
    class StartupModule {}
    const ref = await Test.createTestingModule({ imports: [StartupModule] }).compile();
    const app = ref.createNestApplication({ logger: false });
    try {
      await app.init();
    } finally {
      await app.close();
    }
  };

  it('a store without patch() is refused, naming patch', async () => {
    const noPatch = { get: () => undefined, set: () => undefined, touch: () => undefined, destroy: () => undefined } as unknown as SessionStore;
    await expect(start({ secret: SECRET, store: noPatch })).rejects.toThrow(SessionConfigError);
    await expect(start({ secret: SECRET, store: noPatch })).rejects.toThrow(/patch\(\)/);
  });

  it('@Session() with a name that is not configured is refused at startup, naming the route', async () => {
    @Controller()
    class Typo {
      @Get('x')
      x(@Session('prefz') prefs: Session) {
        return prefs.toJSON();
      }
    }
    await expect(start({ secret: SECRET, sessions: { prefs: {} } }, [Typo])).rejects.toThrow(/Typo\.x asks for the session 'prefz'/);
  });

  it('durations past 400 days are refused, naming the option and the bound', async () => {
    await expect(start({ secret: SECRET, cookie: { maxAge: 1e20 } })).rejects.toThrow(/cookie\.maxAge must be a number of milliseconds from 1 to 34560000000 \(400 days/);
    await expect(start({ secret: SECRET, idleTimeout: 0.5 })).rejects.toThrow(/idleTimeout/);
  });
});

