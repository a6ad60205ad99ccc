import { Controller, Get, Module, Param } from '@nestjs/common';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, Session, SessionModule, type SessionModuleOptions, type SessionStore } from '../../src/index.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';

const OLD = 'the-old-secret-that-is-long-enough-000000000';
const NEW = 'the-new-secret-that-is-long-enough-111111111';

@Controller()
class SecurityController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('read')
  read(@Session() session: Session) {
    return { visits: session.get('visits') ?? null };
  }

  @Get('set-json/:key')
  setJson(@Session() session: Session, @Param('key') key: string) {
    session.set(key, JSON.parse('{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}'));
    return { keys: Object.keys(session.toJSON()) };
  }

  @Get('get/:key')
  getKey(@Session() session: Session, @Param('key') key: string) {
    return { value: session.get(key) ?? null, has: session.has(key) };
  }
}

function moduleWith(options: SessionModuleOptions) {
  @Module({ imports: [SessionModule.forRoot(options)], controllers: [SecurityController] })
  class SecurityModule {}
  return SecurityModule;
}

describe.each(platforms)('security on $name', (platform) => {
  const store = new MemoryStore();
  const apps: TestApp[] = [];
  const start = async (options: SessionModuleOptions, trustProxy = false) => {
    const t = await platform.create(moduleWith({ store, ...options }), { trustProxy });
    apps.push(t);
    return t;
  };
  const get = (t: TestApp, path: string, cookie?: string) => (cookie ? t.http().get(path).set('Cookie', cookie) : t.http().get(path));
  afterAll(async () => {
    for (const t of apps) await t.close();
  });

  describe('key rotation', () => {
    let oldApp: TestApp;
    let rotated: TestApp;
    let newOnly: TestApp;
    beforeAll(async () => {
      oldApp = await start({ secret: OLD });
      rotated = await start({ secret: [NEW, OLD] });
      newOnly = await start({ secret: NEW });
    });

    it('after [new, old] old cookies still work and are re-signed with the new key on their next write; after [new] they are rejected', async () => {
      const jar = new CookieJar();
      jar.take(await get(oldApp, '/count'));
      const oldCookie = jar.header();

      expect((await get(rotated, '/read', oldCookie)).body).toEqual({ visits: 1 });
      const write = await get(rotated, '/count', oldCookie);
      expect(write.body).toEqual({ visits: 2 });
      const [resigned] = setCookies(write.headers);
      expect(resigned.value).not.toBe(jar.get('sid'));
      expect(resigned.value.split('.')[0]).toBe(jar.get('sid')!.split('.')[0]);

      expect((await get(newOnly, '/read', oldCookie)).body).toEqual({ visits: null });
      expect((await get(newOnly, '/read', `sid=${resigned.value}`)).body).toEqual({ visits: 2 });
    });
  });

  describe('tampering', () => {
    let t: TestApp;
    let valid: string;
    beforeAll(async () => {
      t = await start({ secret: NEW });
      const jar = new CookieJar();
      jar.take(await get(t, '/count'));
      valid = jar.get('sid')!;
    });

    it('every single character changed, truncation and extension give an empty session and a 200', async () => {
      const forged = new Set<string>();
      for (let i = 0; i < valid.length; i++) {
        const c = valid[i];
        forged.add(valid.slice(0, i) + (c === 'A' ? 'B' : 'A') + valid.slice(i + 1));
      }
      for (let n = 1; n < valid.length; n += 7) forged.add(valid.slice(0, n));
      forged.add(valid + 'A');
      forged.add(valid + '.' + valid);
      for (const value of forged) {
        const res = await get(t, '/read', `sid=${value}`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ visits: null });
      }
      expect((await get(t, '/read', `sid=${valid}`)).body).toEqual({ visits: 1 });
    });

    it('a cookie signed with another key, or another cookie name, gives an empty session', async () => {
      const other = await start({ secret: OLD, cookie: { name: 'other' } });
      const jar = new CookieJar();
      jar.take(await get(other, '/count'));
      expect((await get(t, '/read', `sid=${jar.get('other')}`)).body).toEqual({ visits: null });
      expect((await get(t, '/read', `other=${valid}`)).body).toEqual({ visits: null });
    });

    it('hostile Cookie headers never crash the request (property-based)', async () => {
      const headerChar = fc.constantFrom(...'=;, "\\%\t\u0000\u00ff\u2028é€sid.'.split(''), 'A', 'z', '0', '-', '_');
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.string({ unit: headerChar, maxLength: 300 }), fc.string({ maxLength: 200 })), async (raw) => {
          // Header values cannot carry some characters at all; an HTTP client refuses them before they reach us.
          const header = raw.replace(/[\r\n]/g, '').replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
          const res = await get(t, '/read', `${header}; sid=${raw.length % 2 === 0 ? valid : header}`);
          expect(res.status).toBe(200);
        }),
        { numRuns: 60 },
      );
    });

    it('a huge header, 100 cookies and duplicated names are handled', async () => {
      const many = Array.from({ length: 100 }, (_, i) => `c${i}=${'v'.repeat(50)}`).join('; ');
      expect((await get(t, '/read', `${many}; sid=${valid}`)).body).toEqual({ visits: 1 });
      expect((await get(t, '/read', `sid=garbage; sid=${valid}`)).status).toBe(200);
      const huge = `x=${'y'.repeat(7000)}; sid=${valid}`;
      expect([200, 431]).toContain((await get(t, '/read', huge)).status);
    });
  });

  describe('prototype pollution', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await start({ secret: NEW });
    });

    it('__proto__ and constructor keys are plain data through set() and through stored JSON', async () => {
      const jar = new CookieJar();
      jar.take(await get(t, '/set-json/__proto__'));
      await get(t, '/set-json/constructor', jar.header());
      const proto = await get(t, '/get/__proto__', jar.header());
      expect(proto.body).toEqual({ value: { ['__proto__']: { polluted: true }, constructor: { prototype: { polluted: true } } }, has: true });
      expect((await get(t, '/get/toString', jar.header())).body).toEqual({ value: null, has: false });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  describe("secure: 'auto'", () => {
    it('follows the protocol, honouring X-Forwarded-Proto only when the app trusts its proxy', async () => {
      const trusting = await start({ secret: NEW, cookie: { secure: 'auto' } }, true);
      const plainHttp = setCookies((await get(trusting, '/count')).headers)[0];
      expect(plainHttp.attributes.secure).toBeUndefined();
      const viaProxy = setCookies((await trusting.http().get('/count').set('X-Forwarded-Proto', 'https')).headers)[0];
      expect(viaProxy.attributes.secure).toBe(true);

      const untrusting = await start({ secret: NEW, cookie: { secure: 'auto' } }, false);
      const spoofed = setCookies((await untrusting.http().get('/count').set('X-Forwarded-Proto', 'https')).headers)[0];
      expect(spoofed.attributes.secure).toBeUndefined();
    });
  });
});

describe.each(platforms)('garbage from a store on $name', (platform) => {
  const garbage: unknown[] = [
    null,
    'a string',
    42,
    { data: 'x', meta: {}, expiresAt: Date.now() + 60_000 },
    { data: {}, meta: null, expiresAt: Date.now() + 60_000 },
    { data: {}, meta: { createdAt: 'yesterday' }, expiresAt: Date.now() + 60_000 },
    { data: {}, meta: { createdAt: 1, flash: { info: 'not a list' } }, expiresAt: Date.now() + 60_000 },
    { data: { visits: '{not json' }, meta: { createdAt: 1 }, expiresAt: Date.now() + 60_000 },
    { data: { visits: 7 }, meta: { createdAt: 1 }, expiresAt: Date.now() + 60_000 },
    { data: JSON.parse('{"__proto__": "{\\"polluted\\": true}"}') as unknown, meta: { createdAt: 1 }, expiresAt: Date.now() + 60_000 },
    { data: {}, meta: { createdAt: 1 }, expiresAt: 'never' },
  ];
  let served = 0;
  const real = new MemoryStore();
  // What a corrupted back-end hands back for a session it does hold.
  const store: SessionStore = {
    get: (id) => (real.get(id) === undefined ? undefined : (garbage[served++ % garbage.length] as never)),
    set: (id, record) => real.set(id, record),
    patch: (id, patch) => real.patch(id, patch),
    touch: (id, expiresAt) => real.touch(id, expiresAt),
    destroy: (id) => real.destroy(id),
  };
  let t: TestApp;
  beforeAll(async () => {
    t = await platform.create(moduleWith({ secret: NEW, store }));
  });
  afterAll(() => t.close());

  it('reads garbage records as no session or absent keys: a 200, never an exception', async () => {
    const jar = new CookieJar();
    jar.take(await t.http().get('/count'));
    for (let i = 0; i < garbage.length; i++) {
      const res = await t.http().get('/read').set('Cookie', jar.header());
      expect(res.status).toBe(200);
      expect([null, 7]).toContain((res.body as { visits: unknown }).visits);
    }
    expect(served).toBe(garbage.length);
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });
});
