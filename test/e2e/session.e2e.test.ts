import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../src/index.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { appModule, SECRET } from './app.fixture.js';

describe.each(platforms)('sessions on $name', (platform) => {
  let t: TestApp;
  const store = new MemoryStore();

  beforeAll(async () => {
    t = await platform.create(appModule({ secret: SECRET, store, sessions: { prefs: { cookie: { name: 'prefs' } } } }));
  });
  afterAll(() => t.close());

  const get = (path: string, jar?: CookieJar) => {
    const req = t.http().get(path);
    const header = jar?.header();
    return header ? req.set('Cookie', header) : req;
  };
  const post = (path: string, jar: CookieJar, body: object = {}) => {
    const req = t.http().post(path).send(body);
    const header = jar.header();
    return header ? req.set('Cookie', header) : req;
  };

  it('a route without a session parameter sends no cookie and stores nothing', async () => {
    const before = store.size;
    const res = await get('/untouched');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(store.size).toBe(before);
  });

  it('a first write sets the signed sid cookie with safe defaults and no Max-Age', async () => {
    const res = await get('/count');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ visits: 1 });
    const [cookie] = setCookies(res.headers);
    expect(cookie.name).toBe('sid');
    expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    expect(cookie.attributes).toMatchObject({ path: '/', httponly: true, samesite: 'Lax' });
    // Outside NODE_ENV=production, Secure only over HTTPS (defaults.e2e.test.ts tests both sides).
    expect(cookie.attributes.secure).toBeUndefined();
    expect(cookie.attributes['max-age']).toBeUndefined();
    expect(cookie.attributes.expires).toBeUndefined();
    expect(res.headers['cache-control']).toBe('private');
  });

  it('counts visits across requests, sending the cookie only once', async () => {
    const jar = new CookieJar();
    expect(jar.take(await get('/count', jar))).toHaveLength(1);
    const second = await get('/count', jar);
    expect(second.body).toEqual({ visits: 2 });
    // The id did not change and the cookie has no Max-Age to slide: nothing to send again.
    expect(second.headers['set-cookie']).toBeUndefined();
    expect((await get('/count', jar)).body).toEqual({ visits: 3 });
  });

  it('a read-only request sends no cookie and writes nothing', async () => {
    const writes = (['set', 'patch', 'touch'] as const).map((method) => vi.spyOn(store, method));
    const written = () => writes.reduce((count, spy) => count + spy.mock.calls.length, 0);
    try {
      const jar = new CookieJar();
      jar.take(await get('/count', jar));
      expect(written()).toBeGreaterThan(0); // the spies do see the store's writes
      for (const spy of writes) spy.mockClear();
      const res = await get('/read', jar);
      expect(res.body).toEqual({ visits: 1, isNew: false });
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(written()).toBe(0);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it('a new session that stays empty is not stored and gets no cookie', async () => {
    const before = store.size;
    const res = await get('/read');
    expect(res.body).toEqual({ visits: null, isNew: true });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(store.size).toBe(before);
  });

  it.each([
    ['a bad signature', (value: string) => value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A')],
    ['an unsigned id', (value: string) => value.split('.')[0]],
    ['a made-up id and signature', () => 'x'.repeat(43) + '.' + 'y'.repeat(43)],
    ['a genuine cookie whose id the store does not know', (value: string) => (store.destroy(value.split('.')[0]), value)],
    ['garbage', () => '%%%\u0000garbage'],
  ])('%s gives a fresh session, never the client id and never an error', async (_, forge) => {
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    const original = jar.get('sid')!;
    jar.set('sid', encodeURIComponent(forge(original)));
    const res = await get('/count', jar);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ visits: 1 });
    const [cookie] = setCookies(res.headers);
    expect(cookie.value.split('.')[0]).not.toBe(forge(original).split('.')[0]);
    expect(cookie.value).not.toBe(original);
  });

  it('an id signed with our secret but unknown to the store is not adopted', async () => {
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    const id = jar.get('sid')!.split('.')[0];
    store.destroy(id);
    const res = await get('/count', jar);
    expect(res.body).toEqual({ visits: 1 });
    expect(setCookies(res.headers)[0].value.split('.')[0]).not.toBe(id);
  });

  it('regenerate() on login gives a new id, keeps the data and kills the old id at once', async () => {
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    const before = jar.get('sid')!;
    const res = await post('/login', jar);
    expect(res.status).toBe(201);
    jar.take(res);
    const after = jar.get('sid')!;
    expect(after).not.toBe(before);
    expect((await get('/all', jar)).body).toEqual({ data: { visits: 1, userId: 42 } });
    const replay = new CookieJar();
    replay.set('sid', before);
    expect((await get('/read', replay)).body).toEqual({ visits: null, isNew: true });
  });

  it('remember me sets a persistent cookie that the next requests keep', async () => {
    const jar = new CookieJar();
    const res = await post('/login', jar, { remember: true });
    const [cookie] = jar.take(res);
    expect(Number(cookie.attributes['max-age'])).toBe(30 * 24 * 60 * 60);
    const next = await get('/count', jar);
    expect(Number(setCookies(next.headers)[0].attributes['max-age'])).toBe(30 * 24 * 60 * 60);
    const plain = new CookieJar();
    const [browserSession] = plain.take(await post('/login', plain, { remember: false }));
    expect(browserSession.attributes['max-age']).toBeUndefined();
  });

  it('destroy() removes the session and clears the cookie with an expiry in the past', async () => {
    const jar = new CookieJar();
    jar.take(await post('/login', jar));
    const old = jar.get('sid')!;
    const res = await post('/logout', jar);
    const [cleared] = setCookies(res.headers);
    expect(cleared.name).toBe('sid');
    expect(cleared.value).toBe('');
    expect(Date.parse(cleared.attributes.expires as string)).toBeLessThan(Date.now());
    const replay = new CookieJar();
    replay.set('sid', old);
    expect((await get('/all', replay)).body).toEqual({ data: {} });
  });

  it('flash messages last until read, and now() is for this request only', async () => {
    const jar = new CookieJar();
    const added = await get('/flash/add/hello', jar);
    expect(added.body).toEqual({ seenNow: ['hello', 'now:hello'] });
    jar.take(added);
    expect((await get('/flash', jar)).body).toEqual({ messages: { info: ['hello'] } });
    expect((await get('/flash', jar)).body).toEqual({ messages: {} });
  });

  it('a flash set before the handler throws survives', async () => {
    const jar = new CookieJar();
    const res = await get('/throws', jar);
    expect(res.status).toBe(400);
    jar.take(res);
    expect((await get('/flash', jar)).body).toEqual({ messages: { error: ['Something went wrong'] } });
  });

  it('changes made in place to a nested value are saved', async () => {
    const jar = new CookieJar();
    jar.take(await get('/nested', jar));
    expect((await get('/nested', jar)).body).toEqual({ items: 2 });
    expect((await get('/all', jar)).body).toEqual({ data: { cart: { items: ['item1', 'item2'] } } });
  });

  it('deleted keys are deleted', async () => {
    const jar = new CookieJar();
    jar.take(await get('/set/a/1', jar));
    await get('/set/b/2', jar);
    await get('/delete/a', jar);
    expect((await get('/all', jar)).body).toEqual({ data: { b: '2' } });
  });

  it('50 concurrent requests setting different keys all survive', async () => {
    const jar = new CookieJar();
    jar.take(await get('/set/first/0', jar));
    await Promise.all(Array.from({ length: 50 }, (_, i) => get(`/set/k${i}/${i}`, jar)));
    const { data } = (await get('/all', jar)).body as { data: Record<string, string> };
    for (let i = 0; i < 50; i++) expect(data[`k${i}`]).toBe(String(i));
    expect(data.first).toBe('0');
  });

  it('saves with @Res() (the response saves itself) and keeps a cookie the handler set', async () => {
    const jar = new CookieJar();
    const res = await get('/raw', jar);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ raw: true });
    jar.take(res);
    expect((await get('/all', jar)).body).toEqual({ data: { raw: true } });

    const own = await get('/raw-own-cookie');
    const names = setCookies(own.headers).map((c) => c.name).sort();
    expect(names).toEqual(['sid', 'theirs']);
  });

  it('saves with @Res({ passthrough: true }) and with a StreamableFile', async () => {
    const jar = new CookieJar();
    const res = await get('/passthrough', jar);
    expect(res.headers['x-handler']).toBe('yes');
    jar.take(res);
    const file = await get('/file', jar).buffer(true);
    expect(file.body.toString()).toBe('file body');
    expect((await get('/all', jar)).body).toEqual({ data: { passthrough: true, downloaded: true } });
  });

  it('saves on an @Sse() route', async () => {
    const jar = new CookieJar();
    const res = await get('/events', jar);
    expect(res.text).toContain('data: one');
    expect(res.text).toContain('data: two');
    jar.take(res);
    expect((await get('/all', jar)).body).toEqual({ data: { sse: true } });
  });

  it('a guard reads the session with SessionService.load()', async () => {
    const jar = new CookieJar();
    expect((await get('/private', jar)).status).toBe(403);
    jar.take(await post('/login', jar));
    const res = await get('/private', jar);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ secret: 'for signed-in users' });
  });

  it('a guard that changes the session saves it on a route without a session parameter', async () => {
    const jar = new CookieJar();
    jar.take(await get('/guard-only', jar));
    await get('/guard-only', jar);
    expect((await get('/all', jar)).body).toEqual({ data: { guarded: 2 } });
  });

  it('a guard and the handler share one session object, saved once', async () => {
    const jar = new CookieJar();
    const res = await get('/guard-and-param', jar);
    expect(res.body).toEqual({ guarded: 1 });
    expect(setCookies(res.headers).filter((c) => c.name === 'sid')).toHaveLength(1);
    jar.take(res);
    expect((await get('/flash', jar)).body).toEqual({ messages: { info: ['from the guard'] } });
  });

  it('a guard that changes the session and then throws still saves it', async () => {
    const jar = new CookieJar();
    const res = await get('/rejected', jar);
    expect(res.status).toBe(403);
    jar.take(res);
    expect((await get('/flash', jar)).body).toEqual({ messages: { error: ['denied'] } });
  });

  it('SessionService.current() finds the session in a service on a @UseSession() route only', async () => {
    const jar = new CookieJar();
    jar.take(await post('/login', jar));
    expect((await get('/who', jar)).body).toEqual({ userId: 42 });
    expect((await get('/who-unbound', jar)).body).toEqual({ userId: null });
  });

  it('keeps a Cache-Control the handler set', async () => {
    const res = await get('/cache-control');
    expect(setCookies(res.headers)).toHaveLength(1);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('session.save() saves at once, and later changes are saved after the handler', async () => {
    const jar = new CookieJar();
    const res = await get('/save-now', jar);
    expect(setCookies(res.headers).filter((c) => c.name === 'sid')).toHaveLength(1);
    jar.take(res);
    expect((await get('/all', jar)).body).toEqual({ data: { early: 1, late: 2 } });
  });

  it('several sessions per request, each with its own cookie', async () => {
    const jar = new CookieJar();
    jar.take(await get('/count', jar));
    const themed = await get('/prefs/dark', jar);
    expect(setCookies(themed.headers).map((c) => c.name)).toEqual(['prefs']);
    jar.take(themed);
    expect((await get('/both', jar)).body).toEqual({ visits: 1, theme: 'dark' });
  });
});
