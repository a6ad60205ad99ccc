import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { ControlledStore } from '../support/controlled-store.js';
import { platforms, type Platform, type TestApp } from '../support/platforms.js';
import { redisUrl } from '../support/services.js';
import { graphqlSkipReason, graphqlStores, type GraphQLBody } from '../support/graphql.js';

const PREFIX = `test:e2e_graphql_${randomBytes(4).toString('hex')}:`;

const reason = graphqlSkipReason();
if (reason !== undefined) console.warn(`GraphQL tests skipped: ${reason}`);
const fixture = reason === undefined ? await import('./graphql.fixture.js') : undefined;

interface Driver {
  name: string;
  platform: Platform;
  module: (store: SessionStore) => ReturnType<NonNullable<typeof fixture>['apolloModule']>;
  /** The driver answers a failed load of a non-null root field with the error's HTTP status (Mercurius), or with 200 (Apollo under Nest). */
  loadFailureStatus: number;
}

const drivers: Driver[] = [
  { name: 'Apollo on Express', platform: platforms.find((p) => p.name === 'express')!, module: (store) => fixture!.apolloModule(store), loadFailureStatus: 200 },
  { name: 'Mercurius on Fastify', platform: platforms.find((p) => p.name === 'fastify')!, module: (store) => fixture!.mercuriusModule(store), loadFailureStatus: 503 },
];

const stores = graphqlStores(PREFIX, reason === undefined ? redisUrl() : undefined);

const cases = drivers.flatMap((driver) => stores.map((store) => ({ driver, store, name: `${driver.name} with ${store.name}` })));

(reason === undefined ? describe : describe.skip).each(cases.map((each, index) => ({ ...each, index })))('GraphQL: $name', ({ driver, store: kind, index }) => {
  let t: TestApp;
  let store: ControlledStore<SessionStore>;
  let jar: CookieJar;

  beforeAll(async () => {
    store = new ControlledStore(kind.create(index));
    t = await driver.platform.create(driver.module(store));
  });
  afterAll(() => t?.close());
  beforeEach(() => {
    jar = new CookieJar();
  });
  afterEach(() => vi.restoreAllMocks());

  /** Sends one GraphQL document over HTTP with the jar's cookies; the jar takes the response's. */
  async function gql(query: string, cookies: CookieJar = jar) {
    const response = await t.http().post('/graphql').set('Cookie', cookies.header()).send({ query });
    cookies.take(response);
    return { status: response.status, body: response.body as GraphQLBody, cookies: setCookies(response.headers), headers: response.headers };
  }

  async function login(userId = 42) {
    const response = await gql(`mutation { login(userId: ${userId}) }`);
    expect(response.body).toEqual({ data: { login: true } });
    return response;
  }

  it('a query reads the session; a login mutation (regenerate, set, flash) sets the cookie on its own response, and the next request sees it', async () => {
    const anonymous = await gql('{ userId visits }');
    expect(anonymous.body).toEqual({ data: { userId: null, visits: 0 } });
    expect(anonymous.cookies).toEqual([]); // nothing written for a visitor with nothing to keep

    const counted = await gql('mutation { increment }');
    expect(counted.body).toEqual({ data: { increment: 1 } });
    const before = jar.get('sid');
    expect(before).toBeDefined();

    const signedIn = await login();
    expect(signedIn.status).toBe(200);
    const cookie = signedIn.cookies.find((each) => each.name === 'sid');
    expect(cookie?.attributes.httponly).toBe(true);
    expect(jar.get('sid')).not.toBe(before); // a new id

    expect((await gql('{ userId visits messages }')).body).toEqual({ data: { userId: 42, visits: 1, messages: ['Welcome 42'] } });
    expect((await gql('{ messages }')).body).toEqual({ data: { messages: [] } }); // read once

    const old = new CookieJar();
    old.set('sid', before!);
    expect((await gql('{ userId visits }', old)).body).toEqual({ data: { userId: null, visits: 0 } }); // the old id is dead
  });

  it('a logout mutation destroys the session and clears its cookie on its own response', async () => {
    await login();
    const id = jar.get('sid')!;
    const out = await gql('mutation { logout }');
    expect(out.body).toEqual({ data: { logout: true } });
    const cleared = out.cookies.find((each) => each.name === 'sid');
    expect(cleared?.value).toBe('');
    expect(jar.get('sid')).toBeUndefined();

    const replay = new CookieJar();
    replay.set('sid', id);
    expect((await gql('{ userId }', replay)).body).toEqual({ data: { userId: null } });
  });

  it('one HTTP request loads once and saves once, however many resolvers ask; two mutations of one document see each other', async () => {
    await login();
    store.reset();
    const read = await gql('{ userId visits messages viewer { userId } fromContext whoAmI guarded }');
    expect(read.body.errors).toBeUndefined();
    expect(read.body.data).toEqual({
      userId: 42,
      visits: 0,
      messages: ['Welcome 42'],
      viewer: { userId: 42 },
      fromContext: expect.stringMatching(/^[\w-]{43}$/),
      whoAmI: 42,
      guarded: 1,
    });
    expect(store.calls).toEqual(['get', 'patch']); // one load; the flash read and the guard's mark in one write

    store.reset();
    const written = await gql('mutation { a: increment b: increment c: increment }');
    expect(written.body).toEqual({ data: { a: 1, b: 2, c: 3 } });
    expect(store.calls).toEqual(['get', 'patch']);
    expect((await gql('{ visits }')).body).toEqual({ data: { visits: 3 } });
  });

  it('a field resolver gets the session through @Session() where its parent asked for none', async () => {
    expect((await gql('{ viewer { name userId } }')).body).toEqual({ data: { viewer: { name: 'viewer', userId: null } } });
    await login(7);
    store.reset();
    expect((await gql('{ viewer { name userId } }')).body).toEqual({ data: { viewer: { name: 'viewer', userId: 7 } } });
    expect(store.calls).toEqual(['get']);
  });

  it('a guard reads the session with SessionService.load(context): refused without it, let through with it', async () => {
    const refused = await gql('{ guarded }');
    expect(refused.status).toBe(200);
    expect(refused.body.data).toBeNull();
    expect(refused.body.errors?.[0].message).toBe('sign in first');
    await login();
    expect((await gql('{ guarded }')).body).toEqual({ data: { guarded: 1 } });
    expect((await gql('{ guarded }')).body).toEqual({ data: { guarded: 2 } }); // the guard's change was saved
  });

  it('a change made after an error in a non-null field sent the response is saved, without a cookie, in one write', async () => {
    await login();
    fixture!.afterResponse.length = 0;
    store.reset();
    const sent = await gql('{ lateSet boom }');
    expect(sent.body.data).toBeNull();
    expect(sent.cookies).toEqual([]);
    await vi.waitFor(() => expect(store.calls).toEqual(['get', 'patch']));
    expect(fixture!.afterResponse).toEqual(['set']);
    expect((await gql('{ userId messages }')).body).toEqual({ data: { userId: 42, messages: ['Welcome 42', 'added late'] } });
    expect((await gql('{ lateValue }')).body).toEqual({ data: { lateValue: 'saved' } });
  });

  it('after the response was sent, regenerate() is refused before the store is touched, and destroy() still signs the user out, with a warning', async () => {
    await login();
    const logged = captureErrors();
    const warnings = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    fixture!.afterResponse.length = 0;
    store.reset();
    await gql('{ lateEnd(how: "regenerate") boom }');
    await vi.waitFor(() => expect(fixture!.afterResponse).toHaveLength(1));
    expect(fixture!.afterResponse[0]).toMatch(/^regenerate: SessionError: Session 'default': regenerate\(\) after the response was sent is refused/);
    expect(store.calls).toEqual(['get']);
    expect(logged()).toEqual([expect.stringMatching(/regenerate\(\) after the response/)]);
    expect((await gql('{ userId }')).body).toEqual({ data: { userId: 42 } });
    fixture!.afterResponse.length = 0;
    store.reset();
    await gql('{ lateEnd(how: "destroy") boom }');
    await vi.waitFor(() => expect(fixture!.afterResponse).toEqual(['destroy: done']));
    expect(store.calls).toEqual(['get', 'destroy']);
    expect(warnings.mock.calls.map(String)).toEqual([expect.stringMatching(/^Session 'default' destroyed after the response was sent: it is gone from its store, but its cookie could no longer be cleared/)]);
    expect((await gql('{ userId }')).body).toEqual({ data: { userId: null } });
  });

  it('a resolver that throws still has its session changes saved: 200 with errors, and the cookie', async () => {
    const failed = await gql('mutation { failing }');
    expect(failed.status).toBe(200);
    expect(failed.body.errors?.[0].message).toBe('the resolver failed');
    expect(failed.cookies.map((each) => each.name)).toEqual(['sid']);
    expect((await gql('{ visits messages }')).body).toEqual({ data: { visits: 99, messages: ['set before the error'] } });
  });

  it('a store that fails to load: a GraphQL error the client can recognise, with no detail of the cause, logged once; the next request works', async () => {
    await login();
    const logged = captureErrors();
    store.failNext('get');
    const failed = await gql('{ visits }');
    expect(failed.status).toBe(driver.loadFailureStatus);
    expect(failed.body.data).toBeNull();
    expect(failed.body.errors).toHaveLength(1);
    const [error] = failed.body.errors!;
    expect(error.message).toBe('Session store unavailable');
    if (driver.loadFailureStatus === 503) expect(error.extensions).toMatchObject({ code: 'SESSION_STORE_UNAVAILABLE' });
    else expect(error.extensions).toMatchObject({ status: 503, originalError: { statusCode: 503, message: 'Service Unavailable', code: 'SESSION_STORE_UNAVAILABLE' } });
    expect(JSON.stringify(failed.body)).not.toMatch(/ECONNREFUSED|10\.1\.2\.3|refused/);
    expect(failed.cookies).toEqual([]);
    expect(logged()).toEqual([expect.stringMatching(/The store of session 'default' failed to read a session: get refused: connect ECONNREFUSED/)]);

    expect((await gql('{ userId }')).body).toEqual({ data: { userId: 42 } });
  });

  it('a store that fails to load is asked once per request: each later mutation of the document gets the same error, logged once', async () => {
    await login();
    const logged = captureErrors();
    store.reset();
    store.failNext('get', 3);
    const failed = await gql('mutation { a: bump b: bump c: bump }');
    store.failures.get = 0;
    expect(failed.body.data).toEqual({ a: null, b: null, c: null });
    expect(failed.body.errors?.map((each) => each.message)).toEqual(['Session store unavailable', 'Session store unavailable', 'Session store unavailable']);
    expect(store.calls).toEqual(['get']);
    expect(logged()).toEqual([expect.stringMatching(/The store of session 'default' failed to read a session: get refused/)]);
    expect((await gql('{ userId visits }')).body).toEqual({ data: { userId: 42, visits: 0 } });
  });

  it.runIf(driver.platform.kind === 'express')('a store that fails to load through SessionService.load(req): no detail of the cause either', async () => {
    await login();
    const logged = captureErrors();
    store.failNext('get');
    const failed = await gql('{ fromRequest }');
    expect(failed.body.errors?.[0].message).toBe('Session store unavailable');
    expect(JSON.stringify(failed.body)).not.toMatch(/ECONNREFUSED|10\.1\.2\.3|refused/);
    expect(logged()).toEqual([expect.stringMatching(/failed to read a session: get refused: connect ECONNREFUSED/)]);
  });

  it('a store that fails in regenerate(): the mutation gets the error without its cause, and the session stays as it was', async () => {
    await login(1);
    const logged = captureErrors();
    store.failNext('destroy');
    const failed = await gql('mutation { login(userId: 2) }');
    expect(failed.body.errors?.[0].message).toBe('Session store unavailable');
    expect(JSON.stringify(failed.body)).not.toMatch(/ECONNREFUSED|10\.1\.2\.3|refused/);
    expect(logged()).toHaveLength(1);
    expect((await gql('{ userId }')).body).toEqual({ data: { userId: 1 } });
  });

  it('a batch of operations loads and saves once; when its save fails, the 503 is a list of GraphQL responses, one per operation', async () => {
    await login();
    store.reset();
    const batch = [{ query: 'mutation { increment }' }, { query: '{ userId }' }];
    const served = await t.http().post('/graphql').set('Cookie', jar.header()).send(batch);
    expect(served.body).toEqual([{ data: { increment: 1 } }, { data: { userId: 42 } }]);
    expect(store.calls).toEqual(['get', 'patch']);

    const logged = captureErrors();
    store.failNext('patch');
    const failed = await t.http().post('/graphql').set('Cookie', jar.header()).send(batch);
    expect(failed.status).toBe(503);
    const unavailable = { errors: [{ message: 'Session store unavailable', extensions: { code: 'SESSION_STORE_UNAVAILABLE' } }] };
    expect(failed.body).toEqual([unavailable, unavailable]);
    expect(setCookies(failed.headers)).toEqual([]);
    expect(logged()).toEqual([expect.stringMatching(/failed to save a session: patch refused/)]);
    expect((await gql('{ visits }')).body).toEqual({ data: { visits: 1 } });
  });

  it.runIf(driver.platform.kind === 'express')('a save that fails where only SessionService.load(req) asked for the session: a 503 with the store\'s code, not shaped as GraphQL (a request alone does not say GraphQL answers it)', async () => {
    await login();
    const logged = captureErrors();
    store.failNext('patch');
    const failed = await gql('mutation { incrementFromRequest }');
    expect(failed.status).toBe(503);
    expect(failed.body).toEqual({ statusCode: 503, message: 'Service Unavailable', code: 'SESSION_STORE_UNAVAILABLE' });
    expect(failed.cookies).toEqual([]);
    expect(logged()).toHaveLength(1);
    expect((await gql('mutation { incrementFromRequest }')).body).toEqual({ data: { incrementFromRequest: 1 } });
  });

  it('a store that fails to save: the response becomes a 503 with a GraphQL error and no cookie, logged once; nothing was kept', async () => {
    await login();
    const logged = captureErrors();
    store.failNext('patch');
    const failed = await gql('mutation { increment }');
    expect(failed.status).toBe(503);
    expect(failed.headers['content-type']).toMatch(/^application\/json/);
    expect(failed.body).toEqual({ errors: [{ message: 'Session store unavailable', extensions: { code: 'SESSION_STORE_UNAVAILABLE' } }] });
    expect(failed.cookies).toEqual([]);
    expect(logged()).toEqual([expect.stringMatching(/The store of session 'default' failed to save a session: patch refused/)]);
    expect((await gql('{ visits }')).body).toEqual({ data: { visits: 0 } });
  });
});

(reason === undefined ? describe : describe.skip)('GraphQL: Apollo on Express told to keep HTTP errors as they are', () => {
  let t: TestApp;
  let store: ControlledStore;
  beforeAll(async () => {
    store = new ControlledStore(new MemoryStore({ sweepInterval: 0 }));
    const options = { preserveHttpStatusForExecutionErrors: false, autoTransformHttpErrors: false };
    t = await platforms.find((p) => p.name === 'express')!.create(fixture!.apolloModule(store, options));
  });
  afterAll(() => t?.close());
  afterEach(() => vi.restoreAllMocks());

  it('answers a failed load with HTTP 503 and extensions.code SESSION_STORE_UNAVAILABLE', async () => {
    const jar = new CookieJar();
    jar.take(await t.http().post('/graphql').send({ query: 'mutation { login(userId: 42) }' }));
    const logged = captureErrors();
    store.failNext('get');
    const failed = await t.http().post('/graphql').set('Cookie', jar.header()).send({ query: '{ visits }' });
    expect(failed.status).toBe(503);
    expect(failed.body).toMatchObject({ data: null, errors: [{ message: 'Session store unavailable', extensions: { code: 'SESSION_STORE_UNAVAILABLE' } }] });
    expect(logged()).toHaveLength(1);
  });
});

/** Collects what Nest's Logger and the console print as errors. */
function captureErrors(): () => string[] {
  const lines: string[] = [];
  const keep = (...args: unknown[]) => void lines.push(args.map((arg) => (arg instanceof Error ? (arg.stack ?? arg.message) : String(arg))).join(' '));
  vi.spyOn(Logger.prototype, 'error').mockImplementation(keep);
  vi.spyOn(Logger, 'error').mockImplementation(keep);
  vi.spyOn(console, 'error').mockImplementation(keep);
  return () => lines;
}
