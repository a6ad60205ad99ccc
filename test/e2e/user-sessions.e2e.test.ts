import { Body, Controller, Get, HttpCode, Module, Param, Post, UnauthorizedException } from '@nestjs/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, SessionConfigError, SessionModule, SessionService, SessionSupportError, UseSession, type AnySessionStore, type SessionModuleOptions } from '../../src/index.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { shiftableClock } from '../support/clock.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { SECRET } from './app.fixture.js';
import { postgresUrl, redisUrl } from '../support/services.js';
import { memoryStoreKind, serverStoreKinds, type StoreKind } from './user-sessions.stores.js';

const HOUR = 60 * 60 * 1000;

@Controller()
@UseSession() // the routes run where SessionService knows the current request's session
class DevicesController {
  constructor(private readonly sessions: SessionService) {}

  @Post('login/:user')
  @HttpCode(200)
  async login(@Session() session: Session, @Param('user') user: string) {
    await session.regenerate();
    session.setUser(user);
    return { ok: true };
  }

  /** A sign-in that read the user's version with the password hash. */
  @Post('login/:user/version/:version')
  @HttpCode(200)
  async loginAtVersion(@Session() session: Session, @Param('user') user: string, @Param('version') version: string) {
    await session.regenerate();
    // `null`: what a NULL version column reads as.
    session.setUser(user, { version: version === 'null' ? (null as unknown as number) : Number(version) });
    return { ok: true };
  }

  @Get('me')
  me(@Session() session: Session) {
    return { user: session.user ?? null };
  }

  /** Ties the session to another user without regenerate(). */
  @Post('retie/:user')
  @HttpCode(200)
  retie(@Session() session: Session, @Param('user') user: string) {
    session.setUser(user);
    return { ok: true };
  }

  @Get('id')
  id(@Session() session: Session) {
    return { id: session.isNew ? null : session.id };
  }

  @Get('set/:value')
  set(@Session() session: Session, @Param('value') value: string) {
    session.set('value', value);
    return { ok: true };
  }

  @Post('regenerate')
  @HttpCode(200)
  async regenerate(@Session() session: Session) {
    await session.regenerate();
    return { ok: true };
  }

  @Post('logout')
  @HttpCode(200)
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }

  @Get('devices')
  async devices(@Session() session: Session) {
    return { sessions: await this.sessions.sessionsOf(signedIn(session)) };
  }

  @Post('devices/others')
  @HttpCode(200)
  async signOutOthers(@Session() session: Session) {
    return { ended: await this.sessions.endSessionsOf(signedIn(session), { except: 'current' }) };
  }

  @Post('devices/everywhere')
  @HttpCode(200)
  async signOutEverywhere(@Session() session: Session) {
    return { ended: await this.sessions.endSessionsOf(signedIn(session)) };
  }

  @Post('devices/end')
  @HttpCode(200)
  async end(@Body() body: { handle: string }) {
    return { ended: await this.sessions.endSession(body.handle) };
  }

  /** What an account page does: only the signed-in user's own sessions. */
  @Post('devices/end-mine')
  @HttpCode(200)
  async endMine(@Session() session: Session, @Body() body: { handle: string }) {
    return { ended: await this.sessions.endSession(body.handle, { user: session.user }) };
  }
}

function signedIn(session: Session): string {
  if (session.user === undefined) throw new UnauthorizedException();
  return session.user;
}

function moduleWith(store: AnySessionStore, more: SessionModuleOptions = {}) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store, ...more })], controllers: [DevicesController] })
  class DevicesModule {}
  return DevicesModule;
}

const DEVICES = [
  { agent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/150.0', ip: '203.0.113.10' },
  { agent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 19_0 like Mac OS X) Safari/605.1', ip: '198.51.100.20' },
  { agent: 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Firefox/140.0', ip: '192.0.2.30' },
];

interface Listed {
  handle: string;
  createdAt: string;
  lastSeenAt: string;
  userAgent?: string;
  ip?: string;
  current: boolean;
}

describe.each(serverStoreKinds(redisUrl(), postgresUrl()))('a user\'s sessions on $name', (kind: StoreKind) => {
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());

  describe.each(platforms.map((platform, index) => ({ platform, index, name: platform.name })))('on $name', ({ platform, index }) => {
    let t: TestApp | undefined;
    beforeAll(async () => {
      t = await platform.create(moduleWith(kind.create(`${platform.kind}${index}`)), { trustProxy: true });
    });
    afterAll(async () => {
      await t?.close();
    });

    /** A browser on one device: its own cookie jar, user agent and address. */
    const device = (n: number) => {
      const jar = new CookieJar();
      const { agent, ip } = DEVICES[n];
      const send = async (method: 'get' | 'post', path: string, body?: object) => {
        const req = t!.http()[method](path).set('User-Agent', agent).set('X-Forwarded-For', ip);
        const header = jar.header();
        const res = await (header ? req.set('Cookie', header) : req).send(body);
        jar.take(res);
        return res;
      };
      return { jar, get: (path: string) => send('get', path), post: (path: string, body?: object) => send('post', path, body) };
    };
    let users = 0;
    /** Three devices signed in as one new user. */
    const threeDevices = async () => {
      const user = `user-${index}-${++users}`;
      const devices = [device(0), device(1), device(2)];
      for (const d of devices) expect((await d.post(`/login/${user}`)).status).toBe(200);
      return { user, devices };
    };

    it('lists the three devices with their user agent and address, marks the current one, and gives handles that are no session id', async () => {
      const { devices } = await threeDevices();
      const res = await devices[1].get('/devices');
      expect(res.status).toBe(200);
      const listed = res.body.sessions as Listed[];
      expect(listed).toHaveLength(3);
      expect(listed.map((s) => s.userAgent).sort()).toEqual(DEVICES.map((d) => d.agent).sort());
      expect(listed.map((s) => s.ip).sort()).toEqual(DEVICES.map((d) => d.ip).sort());
      expect(listed.filter((s) => s.current)).toEqual([expect.objectContaining({ userAgent: DEVICES[1].agent, ip: DEVICES[1].ip })]);
      for (const s of listed) {
        expect(Date.parse(s.createdAt)).toBeGreaterThan(Date.now() - 60_000);
        expect(Date.parse(s.lastSeenAt)).toBeGreaterThanOrEqual(Date.parse(s.createdAt));
      }
      // Most recently seen first.
      const seen = listed.map((s) => Date.parse(s.lastSeenAt));
      expect(seen).toEqual([...seen].sort((a, b) => b - a));
      // A handle is no session id: not an id, not a cookie value, and as a cookie it opens nothing.
      const ids = await Promise.all(devices.map(async (d) => (await d.get('/id')).body.id as string));
      const cookies = devices.map((d) => d.jar.get('sid')!);
      for (const { handle } of listed) {
        expect(typeof handle).toBe('string');
        for (const secret of [...ids, ...cookies]) expect(handle.includes(secret.split('.')[0])).toBe(false);
        const thief = new CookieJar();
        thief.set('sid', handle);
        const res = await t!.http().get('/me').set('Cookie', thief.header());
        expect(res.body).toEqual({ user: null });
      }
    });

    it('signs out everywhere else: the other devices are signed out on their next request, the current one stays', async () => {
      const { devices } = await threeDevices();
      const res = await devices[0].post('/devices/others');
      expect(res.body).toEqual({ ended: 2 });
      expect(setCookies(res.headers)).toEqual([]); // the current session is untouched
      expect((await devices[0].get('/me')).body).toEqual({ user: expect.any(String) });
      for (const other of devices.slice(1)) {
        const next = await other.get('/me');
        expect(next.status).toBe(200);
        expect(next.body).toEqual({ user: null });
        expect((await other.get('/devices')).status).toBe(401);
      }
      const left = (await devices[0].get('/devices')).body.sessions as Listed[];
      expect(left).toEqual([expect.objectContaining({ current: true, userAgent: DEVICES[0].agent })]);
    });

    it('signs out everywhere: the current device too, whose cookie is cleared at once', async () => {
      const { devices } = await threeDevices();
      const res = await devices[2].post('/devices/everywhere');
      expect(res.body).toEqual({ ended: 3 });
      const cleared = setCookies(res.headers).find((c) => c.name === 'sid');
      expect(cleared?.value).toBe('');
      for (const d of devices) expect((await d.get('/me')).body).toEqual({ user: null });
    });

    it('ends one device by its handle; a stale, forged or mangled handle ends nothing and answers false', async () => {
      const { devices } = await threeDevices();
      const listed = (await devices[0].get('/devices')).body.sessions as Listed[];
      const phone = listed.find((s) => s.userAgent === DEVICES[1].agent)!;
      expect((await devices[0].post('/devices/end', { handle: phone.handle })).body).toEqual({ ended: true });
      expect((await devices[1].get('/me')).body).toEqual({ user: null });
      expect((await devices[2].get('/me')).body).toEqual({ user: expect.any(String) });
      // The same handle again: its session is gone.
      expect((await devices[0].post('/devices/end', { handle: phone.handle })).body).toEqual({ ended: false });
      const laptop = listed.find((s) => s.userAgent === DEVICES[2].agent)!.handle;
      const mangled = laptop.slice(0, 30) + (laptop[30] === 'A' ? 'B' : 'A') + laptop.slice(31);
      for (const handle of [mangled, laptop.slice(0, -2), 'not-a-handle', '', 'x'.repeat(5000), devices[2].jar.get('sid')!]) {
        const res = await devices[0].post('/devices/end', { handle });
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ ended: false });
      }
      expect((await devices[2].get('/me')).body).toEqual({ user: expect.any(String) });
      expect(((await devices[0].get('/devices')).body.sessions as Listed[]).map((s) => s.userAgent).sort()).toEqual([DEVICES[0].agent, DEVICES[2].agent].sort());
    });

    it("endSession(handle, { user }) ends only that user's sessions: a leaked handle ends nothing from another account or from no account", async () => {
      const { devices } = await threeDevices();
      const { devices: others } = await threeDevices();
      const listed = (await devices[0].get('/devices')).body.sessions as Listed[];
      const phone = listed.find((s) => s.userAgent === DEVICES[1].agent)!.handle;
      // Another signed-in user, and a visitor signed in as no one, post the handle.
      expect((await others[0].post('/devices/end-mine', { handle: phone })).body).toEqual({ ended: false });
      const stranger = device(2);
      expect((await stranger.post('/devices/end-mine', { handle: phone })).body).toEqual({ ended: false });
      expect((await devices[1].get('/me')).body).toEqual({ user: expect.any(String) });
      expect((await others[1].get('/me')).body).toEqual({ user: expect.any(String) });
      // The user the session belongs to.
      expect((await devices[0].post('/devices/end-mine', { handle: phone })).body).toEqual({ ended: true });
      expect((await devices[1].get('/me')).body).toEqual({ user: null });
    });

    it('regenerate() keeps the tie under the new id, destroy() removes it; other users are untouched', async () => {
      const { devices } = await threeDevices();
      const { devices: others } = await threeDevices();
      const oldCookie = devices[1].jar.get('sid')!;
      await devices[1].post('/regenerate');
      expect((await devices[1].get('/me')).body).toEqual({ user: expect.any(String) });
      const stale = new CookieJar();
      stale.set('sid', oldCookie);
      expect((await t!.http().get('/me').set('Cookie', stale.header())).body).toEqual({ user: null });
      expect((await devices[0].get('/devices')).body.sessions).toHaveLength(3);
      await devices[2].post('/logout');
      const left = (await devices[0].get('/devices')).body.sessions as Listed[];
      expect(left.map((s) => s.userAgent).sort()).toEqual([DEVICES[0].agent, DEVICES[1].agent].sort());
      expect((await others[0].get('/devices')).body.sessions).toHaveLength(3);
    });

    it('ending sessions ends their sockets and subscriptions in this process', async () => {
      const { devices } = await threeDevices();
      const engine = t!.app.get(SessionEngine);
      const ended: string[] = [];
      const ids = await Promise.all(devices.map(async (d) => (await d.get('/id')).body.id as string));
      ids.forEach((id, i) => engine.connections.add('default', id, () => ended.push(`device${i}`)));
      await devices[0].post('/devices/others');
      expect(ended.sort()).toEqual(['device1', 'device2']);
      expect(engine.connections.count('default', ids[0])).toBe(1);
    });

    it('a read-only request writes nothing: the last seen time moves with a write, or at the touch cadence', async () => {
      const { devices } = await threeDevices();
      const lastSeen = async () => (((await devices[0].get('/devices')).body.sessions as Listed[]).find((s) => s.current)!).lastSeenAt;
      const first = await lastSeen();
      await new Promise((resolve) => setTimeout(resolve, 15));
      for (let i = 0; i < 3; i++) expect(setCookies((await devices[0].get('/me')).headers)).toEqual([]);
      expect(await lastSeen()).toBe(first);
      await devices[0].get('/set/x');
      const afterWrite = await lastSeen();
      expect(Date.parse(afterWrite)).toBeGreaterThan(Date.parse(first));
      const clock = shiftableClock();
      try {
        clock.advance(3 * HOUR); // past a tenth of the default 24-hour lifetime: a read touches
        await devices[0].get('/me');
        expect(Date.parse(await lastSeen())).toBeGreaterThanOrEqual(Date.parse(afterWrite) + 3 * HOUR);
      } finally {
        clock.restore();
      }
    });
  });
});

describe('the address of a tied session', () => {
  const kind = memoryStoreKind;
  it.each(platforms)('is the socket\'s when the app does not trust a proxy ($name)', async (platform) => {
    const t = await platform.create(moduleWith(kind.create(`noproxy-${platform.name}`)));
    try {
      const jar = new CookieJar();
      jar.take(await t.http().post('/login/ada').set('X-Forwarded-For', '203.0.113.99'));
      const res = await t.http().get('/devices').set('Cookie', jar.header());
      const [only] = res.body.sessions as Listed[];
      expect(only.ip).not.toBe('203.0.113.99');
      expect(only.ip).toMatch(/127\.0\.0\.1|::1/);
    } finally {
      await t.close();
    }
  });

  it.each(platforms)('and the user agent are left out with device: false, and the user agent alone with device: { ip: false } ($name)', async (platform) => {
    for (const [device, expected] of [
      [false, {}],
      [{ ip: false }, { userAgent: 'agent/1' }],
    ] as const) {
      const t = await platform.create(moduleWith(kind.create(`device-${platform.name}-${JSON.stringify(device)}`), { device }));
      try {
        const jar = new CookieJar();
        jar.take(await t.http().post('/login/ada').set('User-Agent', 'agent/1'));
        const [only] = (await t.http().get('/devices').set('Cookie', jar.header())).body.sessions as Listed[];
        expect({ userAgent: only.userAgent, ip: only.ip }).toEqual({ userAgent: undefined, ip: undefined, ...expected });
      } finally {
        await t.close();
      }
    }
  });
});

describe('session.setUser(id, { version }) without userVersion', () => {
  it.each(platforms)('ignores the version unread: a NULL column or NaN signs in as any other ($name)', async (platform) => {
    const t = await platform.create(moduleWith(memoryStoreKind.create('no-version')));
    try {
      for (const version of ['null', 'not-a-number']) {
        const jar = new CookieJar();
        const res = await t.http().post(`/login/ada/version/${version}`);
        expect(res.status).toBe(200);
        jar.take(res);
        expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: 'ada' });
      }
    } finally {
      await t.close();
    }
  });
});

describe('endSession(handle, second argument): anything but an options object ends nothing', () => {
  it.each(platforms)('a user id in place of the options, a bad user, {}, or an inherited user of someone else end nothing ($name)', async (platform) => {
    const t = await platform.create(moduleWith(memoryStoreKind.create('end-args'), { sessions: { admin: {} } }));
    try {
      const jar = new CookieJar();
      jar.take(await t.http().post('/login/ada'));
      const service = t.app.get(SessionService);
      const [{ handle }] = await service.sessionsOf('ada');
      const untyped = service as unknown as { endSession(handle: string, ...args: unknown[]): Promise<boolean> }; // as from an untyped body
      const otherUser = Object.create({ get user() { return 'bob'; } }) as object;
      for (const second of [undefined, null, 42, Number.NaN, {}, { user: undefined }, { user: null }, { user: '' }, { user: 'a'.repeat(257) }, { user: Number.NaN }, { user: { id: 'ada' } }, otherUser]) {
        await expect(untyped.endSession(handle, second)).resolves.toBe(false);
      }
      // A user id or a session name given as it is, where the options go, ends nothing: even a user
      // id that is also a configured session's name ('default', 'admin').
      for (const second of ['ada', 'bob', 'default', 'admin']) await expect(untyped.endSession(handle, second)).resolves.toBe(false);
      expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: 'ada' });
      // A handle of the default session under another configured name opens nothing there.
      await expect(service.endSession(handle, { user: 'ada', session: 'admin' })).resolves.toBe(false);
      await expect(untyped.endSession(handle, { user: 'ada', session: 'nope' })).rejects.toThrow(SessionConfigError);
      expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: 'ada' });
      await expect(service.endSession(handle, { user: 'ada' })).resolves.toBe(true);
      expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: null });
    } finally {
      await t.close();
    }
  });
});

@Controller('plain')
class PlainDevicesController {
  constructor(private readonly sessions: SessionService) {}

  @Get('devices')
  async devices(@Session() session: Session) {
    return { sessions: await this.sessions.sessionsOf(session) };
  }

  @Post('others')
  @HttpCode(200)
  async signOutOthers(@Session() session: Session) {
    return { ended: await this.sessions.endSessionsOf(session, { except: 'current' }) };
  }

  @Post('everywhere')
  @HttpCode(200)
  async signOutEverywhere(@Session() session: Session) {
    const ended = await this.sessions.endSessionsOf(session);
    return { ended, userAfter: session.user ?? null };
  }
}

describe('a handle listed while its session was one user\'s', () => {
  it.each(platforms)('ends nothing once the session is tied to another user without regenerate() ($name)', async (platform) => {
    const t = await platform.create(moduleWith(memoryStoreKind.create('retied')));
    try {
      const jar = new CookieJar();
      jar.take(await t.http().post('/login/ada'));
      const service = t.app.get(SessionService);
      const [{ handle }] = await service.sessionsOf('ada');
      // The same session, now tied to bob (a setUser() without regenerate()).
      await t.http().post('/retie/bob').set('Cookie', jar.header());
      expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: 'bob' });
      await expect(service.endSession(handle)).resolves.toBe(false);
      await expect(service.endSession(handle, { user: 'ada' })).resolves.toBe(false);
      expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: 'bob' });
    } finally {
      await t.close();
    }
  });
});

describe('a route that holds the session names it: no @UseSession() needed', () => {
  it.each(platforms)('sessionsOf(session) marks that session current and endSessionsOf(session, { except: "current" }) keeps it ($name)', async (platform) => {
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store: memoryStoreKind.create('plain') })], controllers: [DevicesController, PlainDevicesController] })
    class PlainModule {}
    const t = await platform.create(PlainModule);
    try {
      const phone = new CookieJar();
      const laptop = new CookieJar();
      phone.take(await t.http().post('/login/user-default'));
      laptop.take(await t.http().post('/login/user-default'));
      const listed = (await t.http().get('/plain/devices').set('Cookie', laptop.header())).body as { sessions: Listed[] };
      expect(listed.sessions).toHaveLength(2);
      expect(listed.sessions.filter((s) => s.current)).toHaveLength(1);
      const res = await t.http().post('/plain/others').set('Cookie', laptop.header());
      expect(res.body).toEqual({ ended: 1 });
      expect((await t.http().get('/me').set('Cookie', laptop.header())).body).toEqual({ user: 'user-default' });
      expect((await t.http().get('/me').set('Cookie', phone.header())).body).toEqual({ user: null });
      const after = (await t.http().get('/plain/devices').set('Cookie', laptop.header())).body as { sessions: Listed[] };
      expect(after.sessions.map((s) => s.current)).toEqual([true]);
      // A visitor signed in as no one has no devices.
      expect((await t.http().get('/plain/devices')).body).toEqual({ sessions: [] });
      // Signing out everywhere ends the session in hand too: the handler sees it gone, the cookie is cleared.
      const everywhere = await t.http().post('/plain/everywhere').set('Cookie', laptop.header());
      expect(everywhere.body).toEqual({ ended: 1, userAfter: null });
      const cleared = setCookies(everywhere.headers).find((cookie) => cookie.name === 'sid');
      expect(cleared?.attributes['max-age']).toBe('0');
    } finally {
      await t.close();
    }
  });
});

describe('a store that cannot list a user\'s sessions', () => {
  it.each(platforms)('answers SessionSupportError naming the store and what to use instead ($name)', async (platform) => {
    const { CookieStore } = await import('../../src/index.js');
    const t = await platform.create(moduleWith(new CookieStore({ secret: SECRET })));
    try {
      const jar = new CookieJar();
      jar.take(await t.http().post('/login/ada'));
      expect((await t.http().get('/me').set('Cookie', jar.header())).body).toEqual({ user: 'ada' });
      const res = await t.http().get('/devices').set('Cookie', jar.header());
      expect(res.status).toBe(500);
      expect(JSON.stringify(res.body)).not.toMatch(/CookieStore/);
      const service = t.app.get(SessionService);
      await expect(service.sessionsOf('ada')).rejects.toThrow(SessionSupportError);
      await expect(service.sessionsOf('ada')).rejects.toThrow(/CookieStore.*userVersion/);
      await expect(service.endSessionsOf('ada')).rejects.toThrow(SessionSupportError);
      await expect(service.endSession('x')).rejects.toThrow(SessionSupportError);
    } finally {
      await t.close();
    }
  });

  it('a custom store without listByUser() is named, with the method it lacks', async () => {
    const { MemoryStore } = await import('../../src/index.js');
    const inner = new MemoryStore({ sweepInterval: 0 });
    const custom: AnySessionStore = {
      get: (id) => inner.get(id),
      set: (id, record) => inner.set(id, record),
      patch: (id, patch) => inner.patch(id, patch),
      touch: (id, expiresAt) => inner.touch(id, expiresAt),
      destroy: (id) => inner.destroy(id),
    };
    const t = await platforms[0].create(moduleWith(custom));
    try {
      await expect(t.app.get(SessionService).sessionsOf(42)).rejects.toThrow(/listByUser/);
      await expect(t.app.get(SessionService).sessionsOf(42)).rejects.toBeInstanceOf(SessionSupportError);
    } finally {
      await t.close();
    }
  });
});

describe('userVersion: signing a user out everywhere on any store, the cookie store included', () => {
  const stores = [
    { name: 'CookieStore', create: async () => new (await import('../../src/index.js')).CookieStore({ secret: SECRET }) },
    { name: 'MemoryStore', create: async () => memoryStoreKind.create('versions') },
  ];
  describe.each(platforms.flatMap((platform) => stores.map((store) => ({ platform, store, name: `${store.name} on ${platform.name}` }))))('$name', ({ platform, store }) => {
    const versions = new Map<string, number>();
    const calls: string[] = [];
    let failing = false;
    let t: TestApp | undefined;
    beforeAll(async () => {
      const userVersion = async (id: string) => {
        calls.push(id);
        if (failing) throw new Error('user database down');
        return versions.get(id);
      };
      t = await platform.create(moduleWith(await store.create(), { userVersion }));
    });
    afterAll(async () => {
      await t?.close();
    });
    const signIn = async (user: string) => {
      const jar = new CookieJar();
      jar.take(await t!.http().post(`/login/${user}`));
      return jar;
    };
    const me = async (jar: CookieJar) => {
      const res = await t!.http().get('/me').set('Cookie', jar.header());
      jar.take(res);
      return res;
    };

    it('a bumped version signs out every session tied before it, and only those', async () => {
      versions.set('ada', 1);
      versions.set('bob', 7);
      const [laptop, phone, bob] = [await signIn('ada'), await signIn('ada'), await signIn('bob')];
      expect((await me(laptop)).body).toEqual({ user: 'ada' });
      expect((await me(phone)).body).toEqual({ user: 'ada' });
      versions.set('ada', 2); // what the app does on "sign out everywhere" or a password change
      expect((await me(laptop)).body).toEqual({ user: null });
      expect((await me(phone)).body).toEqual({ user: null });
      expect((await me(bob)).body).toEqual({ user: 'bob' });
      const again = await signIn('ada');
      expect((await me(again)).body).toEqual({ user: 'ada' });
    });

    it('asks only for tied sessions: an untied request costs no call', async () => {
      versions.set('cid', 1);
      const jar = new CookieJar();
      jar.take(await t!.http().get('/set/x'));
      calls.length = 0;
      await me(jar);
      await me(jar);
      expect(calls).toEqual([]);
      const tied = await signIn('cid');
      expect(calls).toEqual(['cid']); // read once when the session is tied
      calls.length = 0;
      await me(tied);
      expect(calls).toEqual(['cid']);
    });

    it('setUser(id, { version }) records the version the app read at the password check, not the one at save time', async () => {
      versions.set('fay', 2);
      calls.length = 0;
      // The app checked the password at version 1; a password change made it 2 before this sign-in was saved.
      const raced = new CookieJar();
      raced.take(await t!.http().post('/login/fay/version/1'));
      expect(calls).toEqual([]); // no read at save time: the version was given
      expect((await me(raced)).body).toEqual({ user: null });
      const current = new CookieJar();
      current.take(await t!.http().post('/login/fay/version/2'));
      expect((await me(current)).body).toEqual({ user: 'fay' });
      versions.set('fay', 3);
      expect((await me(current)).body).toEqual({ user: null });
    });

    it('a user the app no longer knows (undefined) is signed out', async () => {
      versions.set('dan', 1);
      const jar = await signIn('dan');
      versions.delete('dan');
      expect((await me(jar)).body).toEqual({ user: null });
    });

    it('a userVersion that fails answers 503 and signs nobody out; the next request works again', async () => {
      versions.set('eve', 1);
      const jar = await signIn('eve');
      failing = true;
      try {
        expect((await t!.http().get('/me').set('Cookie', jar.header())).status).toBe(503);
        expect((await t!.http().post('/login/eve')).status).toBe(503);
      } finally {
        failing = false;
      }
      expect((await me(jar)).body).toEqual({ user: 'eve' });
    });
  });
});
