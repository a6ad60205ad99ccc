import { Controller, Get, Module, Param } from '@nestjs/common';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, Session, SessionModule, type SessionModuleOptions } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
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
    return { keys: Object.keys(session.toJSON()).sort() };
  }

  @Get('get/:key')
  getKey(@Session() session: Session, @Param('key') key: string) {
    return { value: session.get(key) ?? null, has: session.has(key) };
  }

  /** What session.toJSON() gives, as the handler sees it: its own keys, what for...in sees, its prototype. */
  @Get('all')
  all(@Session() session: Session) {
    const data = session.toJSON();
    const prototype: unknown = Object.getPrototypeOf(data);
    const seen: string[] = [];
    for (const key in data) seen.push(key);
    return {
      isNew: session.isNew,
      data,
      ownKeys: Reflect.ownKeys(data).map(String).sort(),
      forInKeys: seen.sort(),
      prototype: prototype === null ? 'null' : prototype === Object.prototype ? 'Object.prototype' : 'something else',
    };
  }
}

/** What /all answers for a session holding `data`: nothing inherited, nothing hidden. */
function plainData(data: Record<string, unknown>, isNew = false) {
  const keys = Object.keys(data).sort();
  return { isNew, data, ownKeys: keys, forInKeys: keys, prototype: expect.stringMatching(/^(null|Object\.prototype)$/) };
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

    it('100 cookies and a 7 KB header still read the session', async () => {
      const many = Array.from({ length: 100 }, (_, i) => `c${i}=${'v'.repeat(50)}`).join('; ');
      const crowded = await get(t, '/read', `${many}; sid=${valid}`);
      expect(crowded.status).toBe(200);
      expect(crowded.body).toEqual({ visits: 1 });
      // Well under Node's 16 KB header limit: the request is served, and the session found.
      const huge = await get(t, '/read', `x=${'y'.repeat(7000)}; sid=${valid}`);
      expect(huge.status).toBe(200);
      expect(huge.body).toEqual({ visits: 1 });
    });
  });

  // The Cookie header is read with cookie.parse, which keeps the first of a repeated name. Browsers
  // send the cookie with the most specific path first (and, for equal paths, the oldest first), so
  // the first is the one set for this path; a sid slipped in after it (a sibling subdomain's
  // Domain cookie, a header injection) must not take the session over.
  describe('a session cookie sent twice', () => {
    let t: TestApp;
    /** Two sessions of this app: one at 1 visit, one at 3. */
    let one: string;
    let three: string;
    beforeAll(async () => {
      t = await start({ secret: NEW });
      const session = async (visits: number) => {
        const jar = new CookieJar();
        jar.take(await get(t, '/count'));
        for (let i = 1; i < visits; i++) await get(t, '/count', jar.header());
        return jar.get('sid')!;
      };
      one = await session(1);
      three = await session(3);
      expect((await get(t, '/read', `sid=${one}`)).body).toEqual({ visits: 1 });
      expect((await get(t, '/read', `sid=${three}`)).body).toEqual({ visits: 3 });
    });

    it('the first one is the session, in either order', async () => {
      const oneFirst = await get(t, '/read', `sid=${one}; sid=${three}`);
      expect(oneFirst.status).toBe(200);
      expect(oneFirst.body).toEqual({ visits: 1 });
      const threeFirst = await get(t, '/read', `sid=${three}; other=x; sid=${one}`);
      expect(threeFirst.status).toBe(200);
      expect(threeFirst.body).toEqual({ visits: 3 });
    });

    it("an attacker's valid sid after the victim's cannot take over: the write goes to the victim's session", async () => {
      const victim = await start({ secret: NEW });
      const own = new CookieJar();
      own.take(await get(victim, '/count'));
      const attacker = new CookieJar();
      attacker.take(await get(victim, '/count'));
      for (let i = 0; i < 4; i++) await get(victim, '/count', attacker.header()); // the attacker's session is at 5

      const res = await get(victim, '/count', `sid=${own.get('sid')!}; sid=${attacker.get('sid')!}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ visits: 2 });
      // Same session, same id: no cookie sent, so nothing replaces the victim's cookie either.
      expect(setCookies(res.headers)).toEqual([]);
      expect((await get(victim, '/read', own.header())).body).toEqual({ visits: 2 });
      expect((await get(victim, '/read', attacker.header())).body).toEqual({ visits: 5 });
    });

    it('a first one that fails its signature is no session (the second is not tried): a 200 and a fresh id', async () => {
      const read = await get(t, '/read', `sid=garbage; sid=${three}`);
      expect(read.status).toBe(200);
      expect(read.body).toEqual({ visits: null });
      const forged = `${three.slice(0, -1)}${three.endsWith('A') ? 'B' : 'A'}`;
      const write = await get(t, '/count', `sid=${forged}; sid=${three}`);
      expect(write.status).toBe(200);
      expect(write.body).toEqual({ visits: 1 });
      const [fresh] = setCookies(write.headers);
      expect(fresh.name).toBe('sid');
      expect(fresh.value.split('.')[0]).not.toBe(three.split('.')[0]);
      // The session behind the second cookie was neither read nor written.
      expect((await get(t, '/read', `sid=${three}`)).body).toEqual({ visits: 3 });
    });
  });

  describe('prototype pollution', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await start({ secret: NEW });
    });

    it('__proto__ and constructor keys are plain own data through set() and through stored JSON, and reach no one else', async () => {
      const injected = { ['__proto__']: { polluted: true }, constructor: { prototype: { polluted: true } } };
      const jar = new CookieJar();
      // The handler sets the key and lists the own keys of toJSON() in the same request.
      const first = await get(t, '/set-json/__proto__');
      expect(first.body).toEqual({ keys: ['__proto__'] });
      jar.take(first);
      expect((await get(t, '/set-json/constructor', jar.header())).body).toEqual({ keys: ['__proto__', 'constructor'] });

      // Read back from the store by later requests: both keys hold the data as it was set.
      expect((await get(t, '/get/__proto__', jar.header())).body).toEqual({ value: injected, has: true });
      expect((await get(t, '/get/constructor', jar.header())).body).toEqual({ value: injected, has: true });
      const all = await get(t, '/all', jar.header());
      expect(all.body).toEqual(plainData({ ['__proto__']: injected, constructor: injected }));
      expect(Object.keys((all.body as { data: object }).data).sort()).toEqual(['__proto__', 'constructor']);
      // What was injected is not reachable as keys of the session, nor are Object.prototype's members.
      for (const key of ['polluted', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
        expect((await get(t, `/get/${key}`, jar.header())).body, key).toEqual({ value: null, has: false });
      }

      // Another client, after all that: an empty session with nothing inherited.
      const other = await get(t, '/all');
      expect(other.body).toEqual(plainData({}, true));
      const otherJar = new CookieJar();
      otherJar.take(await get(t, '/count'));
      expect((await get(t, '/all', otherJar.header())).body).toEqual(plainData({ visits: 1 }));
      for (const key of ['polluted', 'prototype']) {
        expect((await get(t, `/get/${key}`, otherJar.header())).body, key).toEqual({ value: null, has: false });
      }
      // Nor anything in this process (the app runs in it), as a deep merge through __proto__ would do.
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    });
  });

  describe("secure: 'auto'", () => {
    it('follows the protocol; X-Forwarded-Proto: https adds Secure, trusted or not (adding it never exposes a cookie)', async () => {
      const trusting = await start({ secret: NEW, cookie: { secure: 'auto' } }, true);
      const plainHttp = setCookies((await get(trusting, '/count')).headers)[0];
      expect(plainHttp.attributes.secure).toBeUndefined();
      const viaProxy = setCookies((await trusting.http().get('/count').set('X-Forwarded-Proto', 'https')).headers)[0];
      expect(viaProxy.attributes.secure).toBe(true);

      const untrusting = await start({ secret: NEW, cookie: { secure: 'auto' } }, false);
      const untrusted = setCookies((await untrusting.http().get('/count').set('X-Forwarded-Proto', 'https')).headers)[0];
      expect(untrusted.attributes.secure).toBe(true);
      const plain = setCookies((await untrusting.http().get('/count').set('X-Forwarded-Proto', 'http')).headers)[0];
      expect(plain.attributes.secure).toBeUndefined();
    });
  });
});

describe.each(platforms)('garbage from a store on $name', (platform) => {
  const fresh = Date.now() + 60_000;
  const NO_SESSION = plainData({}, true);
  // What a corrupted back-end hands back for a session it does hold, and what the handler must see.
  const garbage: [what: string, record: unknown, seen: unknown][] = [
    ['null', null, NO_SESSION],
    ['a string', 'a string', NO_SESSION],
    ['a number', 42, NO_SESSION],
    ['data that is a string', { data: 'x', meta: { createdAt: 1 }, expiresAt: fresh }, NO_SESSION],
    ['meta that is null', { data: { visits: '7' }, meta: null, expiresAt: fresh }, NO_SESSION],
    ['a createdAt that is not a number', { data: { visits: '7' }, meta: { createdAt: 'yesterday' }, expiresAt: fresh }, NO_SESSION],
    ['flash messages that are not a list', { data: { visits: '7' }, meta: { createdAt: 1, flash: { info: 'not a list' } }, expiresAt: fresh }, NO_SESSION],
    ['an expiry that is not a number', { data: { visits: '7' }, meta: { createdAt: 1 }, expiresAt: 'never' }, NO_SESSION],
    ['an expiry in the past', { data: { visits: '7' }, meta: { createdAt: 1 }, expiresAt: Date.now() - 1 }, NO_SESSION],
    // A well-formed record: a value that is not JSON reads as an absent key, the others as stored.
    ['a value that is not JSON', { data: { visits: '{not json', color: '"blue"' }, meta: { createdAt: 1 }, expiresAt: fresh }, plainData({ color: 'blue' })],
    ['a value that is JSON', { data: { visits: '7' }, meta: { createdAt: 1 }, expiresAt: fresh }, plainData({ visits: 7 })],
    // A number where JSON text belongs: read as the number it is, or as an absent key; either way a 200.
    ['a value that is a number, not JSON text', { data: { visits: 7 }, meta: { createdAt: 1 }, expiresAt: fresh }, expect.toBeOneOf([plainData({ visits: 7 }), plainData({})])],
    // Keys that a careless copy would turn into a prototype stay plain data.
    [
      'a __proto__ key',
      { data: JSON.parse('{"__proto__": "{\\"polluted\\": true}", "visits": "1"}') as unknown, meta: { createdAt: 1 }, expiresAt: fresh },
      plainData({ ['__proto__']: { polluted: true }, visits: 1 }),
    ],
    [
      'a constructor key',
      { data: { constructor: '{"prototype": {"polluted": true}}' }, meta: { createdAt: 1 }, expiresAt: fresh },
      plainData({ constructor: { prototype: { polluted: true } } }),
    ],
  ];
  let served = 0;
  const real = new MemoryStore();
  const store: SessionStore = {
    get: (id) => (real.get(id) === undefined ? undefined : (garbage[served++ % garbage.length][1] as never)),
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

  it('reads a malformed record as no session and a mangled value as an absent key: a 200, never an exception', async () => {
    const jar = new CookieJar();
    jar.take(await t.http().get('/count'));
    for (const [what, , seen] of garbage) {
      const res = await t.http().get('/all').set('Cookie', jar.header());
      expect(res.status, what).toBe(200);
      expect(res.body, what).toEqual(seen);
    }
    expect(served).toBe(garbage.length);
    // Another client meanwhile sees nothing of it.
    expect((await t.http().get('/all')).body).toEqual(NO_SESSION);
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
  });
});
