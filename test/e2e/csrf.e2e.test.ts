import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SessionModuleOptions } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { csrfModule, globalCsrfModule, inheritedCsrfModule } from './csrf.fixture.js';

const REFUSED = { statusCode: 403, error: 'Forbidden', message: 'Invalid or missing CSRF token', code: 'CSRF_TOKEN_INVALID' };
const TOKEN = /^[A-Za-z0-9_-]{86}$/;

/** A visitor with a cookie jar. */
class Visitor {
  readonly jar = new CookieJar();
  constructor(private readonly app: TestApp) {}

  async get(path: string) {
    const response = await this.app.http().get(path).set('Cookie', this.jar.header());
    this.jar.take(response);
    return response;
  }

  async token(path = '/form'): Promise<string> {
    const response = await this.get(path);
    expect(response.status).toBe(200);
    return (response.body as { token: string }).token;
  }

  post(path: string, headers: Record<string, string> = {}) {
    const request = this.app.http().post(path).set('Cookie', this.jar.header());
    for (const [name, value] of Object.entries(headers)) request.set(name, value);
    return request;
  }

  async send(request: PromiseLike<{ headers: Record<string, unknown>; status: number; body: unknown }>) {
    const response = await request;
    this.jar.take(response);
    return response;
  }
}

/** A valid-looking token no session ever issued. */
const forged = () => randomBytes(64).toString('base64url');

describe.each(platforms)('CSRF on $name', (platform) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await platform.create(csrfModule());
  });
  afterAll(async () => {
    await app?.close();
  });

  it('hands out a masked token that differs on every call, each one valid', async () => {
    const visitor = new Visitor(app);
    const first = await visitor.get('/form');
    expect(setCookies(first.headers).map((c) => c.name)).toEqual(['sid']); // the secret lives in the session
    const tokens = [(first.body as { token: string }).token, await visitor.token(), ...((await visitor.get('/form/twice')).body as { tokens: string[] }).tokens];
    for (const token of tokens) expect(token).toMatch(TOKEN);
    expect(new Set(tokens).size).toBe(tokens.length);
    for (const token of tokens) {
      const response = await visitor.send(visitor.post('/transfer', { 'x-csrf-token': token }));
      expect(response.status).toBe(200);
    }
  });

  it('accepts the token from a urlencoded form field, and takes it out of the body', async () => {
    const visitor = new Visitor(app);
    const token = await visitor.token();
    const response = await visitor.post('/transfer').type('form').send(`amount=5&_csrf=${token}`);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ ok: true, body: { amount: '5' } });
  });

  it('accepts the token from a JSON body field', async () => {
    const visitor = new Visitor(app);
    const token = await visitor.token();
    const response = await visitor.post('/transfer').send({ amount: 5, _csrf: token });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ ok: true, body: { amount: 5 } });
  });

  it('takes the body field out also when the header carried the token', async () => {
    const visitor = new Visitor(app);
    const token = await visitor.token();
    const response = await visitor.post('/transfer', { 'x-csrf-token': token }).send({ amount: 5, _csrf: 'anything' });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ ok: true, body: { amount: 5 } });
  });

  it('refuses with a 403 CsrfError: no token, a forged one, garbage, a token of another session', async () => {
    const visitor = new Visitor(app);
    const other = new Visitor(app);
    await visitor.token();
    const otherToken = await other.token();
    const attempts = [
      visitor.post('/transfer').send({ amount: 5 }),
      visitor.post('/transfer').type('form').send('amount=5'),
      visitor.post('/transfer', { 'x-csrf-token': forged() }),
      visitor.post('/transfer').type('form').send(`_csrf=${forged()}`),
      visitor.post('/transfer').send({ _csrf: forged() }),
      visitor.post('/transfer', { 'x-csrf-token': 'garbage' }),
      visitor.post('/transfer', { 'x-csrf-token': '' }),
      visitor.post('/transfer', { 'x-csrf-token': 'x'.repeat(10_000) }),
      visitor.post('/transfer').send({ _csrf: { $ne: null } }),
      visitor.post('/transfer').send({ _csrf: [await visitor.token()] }),
      visitor.post('/transfer').type('form').send(`_csrf[a]=b`),
      visitor.post('/transfer', { 'x-csrf-token': otherToken }),
      visitor.post('/transfer').send({ _csrf: otherToken }),
      visitor.post('/transfer', { 'x-xsrf-token': await visitor.token() }), // not read unless csrf.cookie is on
      app.http().put('/any').set('Cookie', visitor.jar.header()),
      app.http().delete('/any').set('Cookie', visitor.jar.header()),
      app.http().patch('/any').set('Cookie', visitor.jar.header()),
    ];
    for (const attempt of attempts) {
      const response = await attempt;
      expect(response.status).toBe(403);
      expect(response.body).toEqual(REFUSED);
    }
  });

  it('refuses a token sent without its session cookie, and creates no session for it', async () => {
    const visitor = new Visitor(app);
    const token = await visitor.token();
    const response = await app.http().post('/transfer').set('x-csrf-token', token);
    expect(response.status).toBe(403);
    expect(response.body).toEqual(REFUSED);
    expect(setCookies(response.headers)).toEqual([]);
  });

  it('rotates the secret on regenerate(): a token from before the sign-in fails after it', async () => {
    const visitor = new Visitor(app);
    const before = await visitor.token();
    const login = await visitor.send(visitor.post('/login', { 'x-csrf-token': before }));
    expect(login.status).toBe(200);
    const refused = await visitor.send(visitor.post('/transfer', { 'x-csrf-token': before }));
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual(REFUSED);
    const after = await visitor.token();
    expect((await visitor.send(visitor.post('/transfer', { 'x-csrf-token': after }))).status).toBe(200);
  });

  it('per-form tokens work only for their path and method', async () => {
    const visitor = new Visitor(app);
    const transfer = await visitor.token('/form/transfer');
    expect((await visitor.post('/other', { 'x-csrf-token': transfer })).status).toBe(403);
    expect((await visitor.post('/transfer', { 'x-csrf-token': transfer })).status).toBe(200);
    expect((await visitor.post('/transfer?x=1', { 'x-csrf-token': transfer })).status).toBe(200); // the same path

    const { post, put } = (await visitor.get('/form/self')).body as { post: string; put: string };
    expect((await visitor.post('/form/self', { 'x-csrf-token': post })).status).toBe(200);
    expect((await visitor.post('/transfer', { 'x-csrf-token': post })).status).toBe(403);
    // A PUT token is no POST token.
    expect((await visitor.post('/transfer', { 'x-csrf-token': put })).status).toBe(403);
  });

  it('lets safe methods, skipped routes and unguarded routes through without a session', async () => {
    for (const request of [app.http().get('/any'), app.http().get('/guarded-get'), app.http().head('/guarded-get'), app.http().post('/hook'), app.http().post('/open')]) {
      const response = await request;
      expect(response.status).not.toBe(403);
      expect(response.status).toBeLessThan(500);
      expect(setCookies(response.headers)).toEqual([]);
    }
    // An OPTIONS route of a guarded controller: its handler ran.
    const options = await app.http().options('/guarded-options');
    expect(options.status).toBe(200);
    expect(options.body).toEqual({ ok: true, method: 'OPTIONS' });
    expect(setCookies(options.headers)).toEqual([]);
  });

  it('hides the secret from the Session API, refuses its keys, and keeps it through clear()', async () => {
    const fresh = await app.http().get('/form/view');
    expect(fresh.body).toEqual({ token: expect.stringMatching(TOKEN), data: {}, has: false, get: null });
    const visitor = new Visitor(app);
    const token = await visitor.token();
    const view = await visitor.get('/session');
    expect(view.body).toEqual({
      data: {},
      has: false,
      get: null,
      attempts: { set: 'SessionValidationError: path given', setOther: 'SessionValidationError: path given', delete: 'SessionValidationError: path given' },
    });
    // Spread, Object.keys/entries/values/assign, for...in, JSON, structuredClone, util.inspect: none shows the secret or the id.
    expect((await visitor.get('/session/enumerate')).body).toEqual({ leaks: [] });
    expect((await new Visitor(app).get('/form/enumerate')).body).toEqual({ leaks: [] });
    const cleared = await visitor.send(visitor.post('/clear', { 'x-csrf-token': token }));
    expect(cleared.body).toEqual({ data: {} });
    expect((await visitor.send(visitor.post('/transfer', { 'x-csrf-token': token }))).status).toBe(200);
  });
});

describe.each(platforms)('CSRF app-wide (APP_GUARD) on $name', (platform) => {
  let app: TestApp;
  const store = new ControlledStore();
  beforeAll(async () => {
    app = await platform.create(globalCsrfModule({ store }));
  });
  afterAll(async () => {
    await app?.close();
  });

  it('creates no session on safe requests, refuses unsafe ones without a token, passes them with one', async () => {
    store.reset();
    for (const request of [app.http().get('/plain'), app.http().head('/plain'), app.http().options('/plain')]) {
      const response = await request;
      expect(response.status).toBe(200);
      expect(setCookies(response.headers)).toEqual([]);
    }
    expect((await app.http().options('/plain')).body).toEqual({ ok: true, method: 'OPTIONS' }); // its handler ran
    expect(store.calls).toEqual([]); // the guard neither read nor wrote a session
    const refused = await app.http().post('/open');
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual(REFUSED);
    expect(setCookies(refused.headers)).toEqual([]);

    const visitor = new Visitor(app);
    const token = await visitor.token();
    // A visitor with a session: a safe request to a route that uses none costs no store call either.
    store.reset();
    expect((await visitor.get('/plain')).status).toBe(200);
    expect(store.calls).toEqual([]);
    expect((await visitor.post('/open', { 'x-csrf-token': token })).status).toBe(200);
    expect(store.calls).toEqual(['get']); // the check read the session, and wrote nothing
    expect((await app.http().post('/webhooks/incoming')).status).toBe(200); // @SkipCsrf() on the controller
  });
});

describe.each(platforms)('@SkipCsrf() on one of two controllers inheriting a handler, on $name', (platform) => {
  // Each order on a fresh app: what the first request decides must not carry over to the other controller.
  it.each([
    ['the skipped controller first', ['/inherited-webhook/delete', '/inherited-account/delete']],
    ['the checked controller first', ['/inherited-account/delete', '/inherited-webhook/delete']],
  ])('skips only the controller marked, %s', async (_order, paths) => {
    const app = await platform.create(inheritedCsrfModule());
    try {
      for (const path of [...paths, ...paths]) {
        const response = await app.http().post(path);
        if (path === '/inherited-webhook/delete') {
          expect(response.status).toBe(200);
        } else {
          expect(response.status).toBe(403);
          expect(response.body).toEqual(REFUSED);
        }
      }
      const visitor = new Visitor(app);
      const token = await visitor.token();
      expect((await visitor.post('/inherited-account/delete', { 'x-csrf-token': token })).status).toBe(200);
      // @SkipCsrf() on the base class: inherited by the controllers extending it.
      expect((await app.http().post('/skipped-base/delete')).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe.each(platforms)('the readable XSRF-TOKEN cookie on $name', (platform) => {
  let app: TestApp;
  beforeAll(async () => {
    // The production defaults: both cookies Secure (outside production, Secure only over HTTPS).
    vi.stubEnv('NODE_ENV', 'production');
    app = await platform.create(csrfModule({ csrf: { cookie: true } }));
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    await app?.close();
  });

  function xsrfCookie(response: { headers: Record<string, unknown> }) {
    return setCookies(response.headers).find((c) => c.name === 'XSRF-TOKEN');
  }

  it('is set where a token is handed out: readable by scripts, SameSite and Secure as the session cookie', async () => {
    const visitor = new Visitor(app);
    const response = await visitor.get('/form');
    const cookie = xsrfCookie(response);
    expect(cookie).toBeDefined();
    expect(cookie!.value).toMatch(TOKEN);
    expect(cookie!.attributes).toEqual({ path: '/', samesite: 'Lax', secure: true });
    const plain = await visitor.get('/plain');
    expect(setCookies(plain.headers)).toEqual([]);
  });

  it('is sent back in X-XSRF-TOKEN (Angular, axios); a forged one is refused', async () => {
    const visitor = new Visitor(app);
    await visitor.get('/form');
    const value = visitor.jar.get('XSRF-TOKEN')!;
    const ok = await visitor.send(visitor.post('/transfer', { 'X-XSRF-TOKEN': value }));
    expect(ok.status).toBe(200);
    expect(xsrfCookie(ok)).toBeUndefined(); // still valid: not sent again
    const refused = await visitor.send(visitor.post('/transfer', { 'X-XSRF-TOKEN': forged() }));
    expect(refused.status).toBe(403);
    expect(refused.body).toEqual(REFUSED);
  });

  it('is replaced on the response of a sign-in (regenerate) and of a sign-out (destroy): the old one fails, the new one works', async () => {
    const visitor = new Visitor(app);
    await visitor.get('/form');
    const before = visitor.jar.get('XSRF-TOKEN')!;
    const login = await visitor.send(visitor.post('/login', { 'X-XSRF-TOKEN': before }));
    expect(login.status).toBe(200);
    const renewed = xsrfCookie(login);
    expect(renewed).toBeDefined();
    expect(renewed!.value).not.toBe(before);
    expect((await visitor.post('/transfer', { 'X-XSRF-TOKEN': before })).status).toBe(403);
    expect((await visitor.send(visitor.post('/transfer', { 'X-XSRF-TOKEN': renewed!.value }))).status).toBe(200);

    const logout = await visitor.send(visitor.post('/logout', { 'X-XSRF-TOKEN': renewed!.value }));
    expect(logout.status).toBe(200);
    const fresh = xsrfCookie(logout);
    expect(fresh).toBeDefined();
    expect((await visitor.post('/transfer', { 'X-XSRF-TOKEN': renewed!.value })).status).toBe(403);
    expect((await visitor.send(visitor.post('/login', { 'X-XSRF-TOKEN': fresh!.value }))).status).toBe(200);
  });

  it('is cleared with the session cookie when a session ends without the check (a GET sign-out)', async () => {
    const visitor = new Visitor(app);
    await visitor.get('/form');
    expect(visitor.jar.get('XSRF-TOKEN')).toMatch(TOKEN);
    const out = await visitor.get('/sign-out');
    expect(setCookies(out.headers).find((c) => c.name === 'sid')?.value).toBe('');
    const cleared = xsrfCookie(out);
    expect(cleared).toBeDefined();
    expect(cleared!.value).toBe('');
    expect(cleared!.attributes).toMatchObject({ 'max-age': '0', path: '/', samesite: 'Lax', secure: true });
    expect(visitor.jar.get('XSRF-TOKEN')).toBeUndefined();
    // A visitor who never had the readable cookie gets no clearing of it.
    const other = new Visitor(app);
    await other.get('/count');
    expect(setCookies((await other.get('/sign-out')).headers).map((c) => c.name)).toEqual(['sid']);
  });
});

describe.each(platforms)('the readable XSRF-TOKEN cookie with a persistent session cookie on $name', (platform) => {
  let app: TestApp;
  beforeAll(async () => {
    // The production defaults: both cookies Secure (outside production, Secure only over HTTPS).
    vi.stubEnv('NODE_ENV', 'production');
    app = await platform.create(csrfModule({ csrf: { cookie: true }, cookie: { maxAge: 3_600_000 } }));
    vi.unstubAllEnvs();
  });
  afterAll(async () => {
    await app?.close();
  });

  const named = (response: { headers: Record<string, unknown> }, name: string) => setCookies(response.headers).find((c) => c.name === name);

  it('is set again, with the same lifetime, whenever the session cookie is', async () => {
    const visitor = new Visitor(app);
    const issued = await visitor.get('/form');
    expect(named(issued, 'XSRF-TOKEN')?.attributes['max-age']).toBe('3600');
    expect(named(issued, 'sid')?.attributes['max-age']).toBe('3600');
    // A later request refreshes the session cookie's Max-Age: the readable cookie slides with it.
    const counted = await visitor.get('/count');
    expect(named(counted, 'sid')?.attributes['max-age']).toBe('3600');
    const refreshed = named(counted, 'XSRF-TOKEN');
    expect(refreshed).toBeDefined();
    expect(refreshed!.value).toMatch(TOKEN);
    expect(refreshed!.attributes).toEqual({ 'max-age': '3600', path: '/', samesite: 'Lax', secure: true });
    expect((await visitor.send(visitor.post('/transfer', { 'X-XSRF-TOKEN': refreshed!.value }))).status).toBe(200);
  });

  it('has the Max-Age of the session cookie where an absolute timeout caps that one', async () => {
    const capped = await platform.create(csrfModule({ csrf: { cookie: true }, cookie: { maxAge: 3_600_000 }, absoluteTimeout: 60_000 }));
    try {
      const visitor = new Visitor(capped);
      const issued = await visitor.get('/form');
      expect(named(issued, 'sid')?.attributes['max-age']).toBe('60');
      expect(named(issued, 'XSRF-TOKEN')?.attributes['max-age']).toBe('60');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const counted = await visitor.get('/count');
      const sid = Number(named(counted, 'sid')?.attributes['max-age']);
      expect(sid).toBeLessThan(60);
      expect(named(counted, 'XSRF-TOKEN')?.attributes['max-age']).toBe(String(sid));
      // A token handed out on a request that does not set the session cookie again: its lifetime left.
      const again = await visitor.get('/form');
      expect(named(again, 'sid')).toBeUndefined();
      expect(Number(named(again, 'XSRF-TOKEN')?.attributes['max-age'])).toBeLessThanOrEqual(sid);
    } finally {
      await capped.close();
    }
  });

  it('is cleared with the session cookie when a session ends without the check (a GET sign-out)', async () => {
    const visitor = new Visitor(app);
    await visitor.get('/form');
    const out = await visitor.get('/sign-out');
    expect(named(out, 'sid')?.attributes['max-age']).toBe('0');
    expect(named(out, 'XSRF-TOKEN')).toMatchObject({ value: '', attributes: { 'max-age': '0', path: '/' } });
  });

  it('is not made for a session that never handed out a token', async () => {
    const visitor = new Visitor(app);
    const counted = await visitor.get('/count');
    expect(setCookies(counted.headers).map((c) => c.name)).toEqual(['sid']);
    expect((await visitor.get('/count')).body).toEqual({ count: 2 });
    expect(visitor.jar.get('XSRF-TOKEN')).toBeUndefined();
  });
});

describe('CSRF options', () => {
  const platform = platforms[0];
  const bad: [SessionModuleOptions['csrf'], RegExp][] = [
    [{ headerName: 'bad header' }, /csrf\.headerName/],
    [{ fieldName: '' }, /csrf\.fieldName/],
    [{ cookie: { name: 'sid' } }, /csrf\.cookie\.name 'sid'/],
    [{ cookie: { name: 'a;b' } }, /csrf\.cookie\.name/],
    [{ cookie: { headerName: 'x-csrf-token' } }, /csrf\.cookie\.headerName/],
    ['yes' as never, /^csrf must be an object/],
    [{ cookie: { name: '__Host-XSRF', path: '/app' } }, /csrf\.cookie\.name '__Host-XSRF'/],
  ];
  it.each(bad)('refuses %j at startup, naming the option', async (csrf, message) => {
    await expect(platform.create(csrfModule({ csrf }))).rejects.toThrow(message);
  });
});

describe('a __Host- or __Secure- name for the readable XSRF-TOKEN cookie', () => {
  it.each(['__Host-XSRF-TOKEN', '__Secure-XSRF-TOKEN'])('%s starts outside production too, and the cookie is Secure even over plain HTTP', async (name) => {
    vi.stubEnv('NODE_ENV', 'development');
    const app = await platforms[0].create(csrfModule({ csrf: { cookie: { name } } }));
    vi.unstubAllEnvs();
    try {
      const res = await app.http().get('/form');
      const cookie = setCookies(res.headers).find((each) => each.name === name);
      expect(cookie?.attributes.secure).toBe(true);
    } finally {
      await app.close();
    }
  });
});

describe('the readable XSRF-TOKEN cookie outside production', () => {
  it.each(platforms)('is Secure exactly where the session cookie is: over HTTPS, not over plain HTTP ($name)', async (platform) => {
    vi.stubEnv('NODE_ENV', 'development');
    const app = await platform.create(csrfModule({ csrf: { cookie: true } }));
    vi.unstubAllEnvs();
    try {
      for (const [proto, secure] of [['http', undefined], ['https', true]] as const) {
        const res = await app.http().get('/form').set('X-Forwarded-Proto', proto);
        const cookies = setCookies(res.headers);
        expect(cookies.find((each) => each.name === 'XSRF-TOKEN')?.attributes.secure).toBe(secure);
        expect(cookies.find((each) => each.name === 'sid')?.attributes.secure).toBe(secure);
      }
    } finally {
      await app.close();
    }
  });
});
