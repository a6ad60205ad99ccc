import { createRequire } from 'node:module';
import fc from 'fast-check';
import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import { CookieStore, SessionConfigError } from '../../src/index.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { ExpressSessionCookie } from '../../src/migration/express-session-cookie.js';
import { parseExpressSession } from '../../src/migration/express-session-record.js';
import { expressSessionReader, type ExpressSessionReaderOptions } from '../../src/migration/express-session.js';

// express-session's own signing code: what the reader must accept, byte for byte.
const fromExpressSession = createRequire(createRequire(import.meta.url).resolve('express-session'));
const signature = fromExpressSession('cookie-signature') as { sign(value: string, secret: string): string };
const signed = (id: string, secret: string) => `s:${signature.sign(id, secret)}`;

const redis = { get: async () => null, eval: async () => null };
const pool = { query: async () => ({ rows: [], rowCount: 0 }) };
const SECRET = 'a-test-secret-that-is-long-enough-0123456789';

describe('the express-session cookie', () => {
  const cookie = (secrets: string[]) => new ExpressSessionCookie('connect.sid', secrets, '/', undefined);

  it('verifies what express-session signed, with any secret of the list, for any id and secret', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (id, secret, other) => {
        fc.pre(other !== secret);
        expect(cookie([secret]).verify(signed(id, secret))).toBe(id);
        expect(cookie([other, secret]).verify(signed(id, secret))).toBe(id);
        expect(cookie([other]).verify(signed(id, secret))).toBeUndefined();
      }),
    );
  });

  it('refuses a changed id or signature, another spelling of the signature, and an unsigned or empty value', () => {
    const reader = cookie(['secret-one', 'secret-two']);
    const value = signed('Zm9vYmFyYmF6cXV4', 'secret-two');
    const dot = value.lastIndexOf('.');
    for (let i = 0; i < value.length; i++) {
      if (i < 2 || i === dot) continue;
      const changed = value.slice(0, i) + (value[i] === 'a' ? 'b' : 'a') + value.slice(i + 1);
      expect(reader.verify(changed), changed).toBeUndefined();
    }
    // base64url, or padding: the same bytes spelled otherwise.
    const withSymbols = signed('id-with+/-in-its-mac-0', 'secret-one');
    expect(reader.verify(withSymbols)).toBe('id-with+/-in-its-mac-0');
    const mac = withSymbols.slice(withSymbols.lastIndexOf('.') + 1);
    expect(mac).toMatch(/[+/]/);
    expect(reader.verify(withSymbols.replace(/\+/g, '-').replace(/\//g, '_'))).toBeUndefined();
    expect(reader.verify(`${value}=`)).toBeUndefined();
    expect(reader.verify(value.slice(2))).toBeUndefined();
    expect(reader.verify(signed('', 'secret-one'))).toBeUndefined();
    expect(reader.verify('s:')).toBeUndefined();
    expect(reader.verify('')).toBeUndefined();
  });

  it('clears the cookie on the path and domain it was set for, with Secure for a __Host- or __Secure- name', () => {
    expect(new ExpressSessionCookie('connect.sid', ['x'], '/', undefined).clearCookie).toBe(
      'connect.sid=; Max-Age=0; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly',
    );
    expect(new ExpressSessionCookie('old', ['x'], '/app', 'example.com').clearCookie).toBe(
      'old=; Max-Age=0; Domain=example.com; Path=/app; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly',
    );
    expect(new ExpressSessionCookie('__Host-sid', ['x'], '/', undefined).clearCookie).toContain('; Secure');
  });
});

describe('a stored express-session session', () => {
  const now = Date.now();

  it('gives its data without the cookie object, and its expiry', () => {
    const expires = new Date(now + 60_000).toISOString();
    const text = JSON.stringify({ cookie: { originalMaxAge: 60_000, expires, httpOnly: true, path: '/' }, userId: 1, nested: { a: [1] } });
    expect(parseExpressSession(text, now)).toEqual({ data: { userId: 1, nested: { a: [1] } }, expiresAt: Date.parse(expires), persistent: true, version: text });
    const browser = JSON.stringify({ cookie: { originalMaxAge: null, expires: null }, userId: 1 });
    expect(parseExpressSession(browser, now)).toEqual({ data: { userId: 1 }, expiresAt: undefined, persistent: false, version: browser });
  });

  it("ends a browser-session cookie's session when its store ends the record; the cookie's own expiry comes first", () => {
    const browser = JSON.stringify({ cookie: { originalMaxAge: null, expires: null }, userId: 1 });
    expect(parseExpressSession(browser, now, now + 5000)).toEqual({ data: { userId: 1 }, expiresAt: now + 5000, persistent: false, version: browser });
    expect(parseExpressSession(browser, now, now)).toBeUndefined();
    const expires = new Date(now + 60_000).toISOString();
    const persistent = JSON.stringify({ cookie: { expires }, userId: 1 });
    expect(parseExpressSession(persistent, now, now + 5000)).toMatchObject({ expiresAt: Date.parse(expires), persistent: true });
  });

  it('keeps keys such as __proto__ as plain data', () => {
    const found = parseExpressSession('{"cookie":{},"__proto__":{"polluted":true},"constructor":1}', now);
    expect(found && 'data' in found && Object.keys(found.data)).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads an expired session, a malformed one and anything but an object as nothing', () => {
    for (const text of [
      JSON.stringify({ cookie: { expires: new Date(now - 1).toISOString() }, userId: 1 }),
      JSON.stringify({ cookie: { expires: 'soon' }, userId: 1 }),
      JSON.stringify({ cookie: { expires: {} }, userId: 1 }),
      JSON.stringify({ cookie: 'x', userId: 1 }),
      '[1,2]',
      'null',
      '"text"',
      'not json',
      JSON.stringify({ 'nest-sessions:migratedTo': 5 }),
    ]) {
      expect(parseExpressSession(text, now), text).toBeUndefined();
    }
  });
});

describe('expressSessionReader options', () => {
  const fails = (options: unknown, message: RegExp) => {
    expect(() => expressSessionReader(options as ExpressSessionReaderOptions)).toThrow(SessionConfigError);
    expect(() => expressSessionReader(options as ExpressSessionReaderOptions)).toThrow(message);
  };

  it('names the option that is wrong', () => {
    fails({ secret: 'x' }, /redis .* or pool .*MemoryStore/);
    fails({ secret: 'x', redis, pool }, /not both/);
    fails({ redis }, /secret must be/);
    fails({ secret: [], redis }, /secret must be/);
    fails({ secret: [undefined, 'x'], redis }, /secret\[0\] must be a non-empty string/);
    fails({ secret: ['x', null], redis }, /secret\[1\] must be a non-empty string/);
    fails({ secret: '', redis }, /secret must be a non-empty string/);
    fails({ secret: 'x', redis: {} }, /redis must be an ioredis/);
    // connect-redis 10 takes node-redis, whose eval() would fail at every read: refused at startup.
    fails({ secret: 'x', redis: createClient() }, /node-redis client .* needs an ioredis client/);
    fails({ secret: 'x', pool: {} }, /pool must be a pg Pool/);
    fails({ secret: 'x', pool, table: 'session; DROP TABLE users' }, /table .* must be a table name/);
    fails({ secret: 'x', pool, prefix: 'sess:' }, /prefix is for connect-redis/);
    fails({ secret: 'x', redis, table: 'session' }, /table is for connect-pg-simple/);
    fails({ secret: 'x', redis, name: 'a b' }, /name "a b" is not a valid cookie name/);
    fails({ secret: 'x', redis, cookie: { path: 'app' } }, /cookie.path/);
    expect(expressSessionReader({ secret: ['x', 'y'], pool, table: 'public.session' }).cookieName).toBe('connect.sid');
  });

  it('is refused at startup beside a CookieStore default session, or a session cookie of the same name', () => {
    const migrateFrom = expressSessionReader({ secret: 'x', redis });
    const start = (options: object) => () => new SessionEngine({ secret: SECRET, migrateFrom, ...options });
    expect(start({ store: new CookieStore({ secret: SECRET }) })).toThrow(/migrateFrom needs a server-side store/);
    expect(start({ cookie: { name: 'connect.sid' } })).toThrow(/migrateFrom reads the cookie 'connect.sid', which session 'default' uses too/);
    expect(start({ sessions: { prefs: { cookie: { name: 'connect.sid' } } } })).toThrow(/session 'prefs' uses too/);
    expect(() => new SessionEngine({ secret: SECRET, migrateFrom: {} as never })).toThrow(SessionConfigError);
    expect(start({})).not.toThrow();
  });
});
