import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { graphqlSkipReason, type GraphQLBody } from '../support/graphql.js';
import { platforms, type Platform, type TestApp } from '../support/platforms.js';

const reason = graphqlSkipReason();
if (reason !== undefined) console.warn(`GraphQL CSRF tests skipped: ${reason}`);
const fixture = reason === undefined ? await import('./csrf-graphql.fixture.js') : undefined;

const REFUSED = { statusCode: 403, error: 'Forbidden', message: 'Invalid or missing CSRF token', code: 'CSRF_TOKEN_INVALID' };


const drivers: { name: string; platform: Platform; module: (global: boolean) => unknown }[] = [
  { name: 'Apollo on Express', platform: platforms.find((p) => p.name === 'express')!, module: (global) => fixture!.apolloCsrfModule(global) },
  { name: 'Mercurius on Fastify', platform: platforms.find((p) => p.name === 'fastify')!, module: (global) => fixture!.mercuriusCsrfModule(global) },
];
const cases = drivers.flatMap((driver) => [false, true].map((global) => ({ ...driver, global, label: `${driver.name}, ${global ? 'app-wide guard' : 'guard on the resolver'}` })));

(reason === undefined ? describe : describe.skip).each(cases)('CSRF in GraphQL: $label', ({ platform, module, global }) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await platform.create(module(global) as never);
    await t.app.listen(0, '127.0.0.1');
  });
  afterAll(() => t?.close());

  async function gql(jar: CookieJar, query: string, token?: string) {
    return post(jar, { query }, token === undefined ? {} : { 'x-csrf-token': token });
  }

  /** A POST of any body (a batch: an array of operations) with the jar's cookies and `headers`. */
  async function post(jar: CookieJar, body: object, headers: Record<string, string> = {}) {
    const response = await t.http().post('/graphql').set('Cookie', jar.header()).set(headers).send(body);
    jar.take(response);
    return { status: response.status, body: response.body as GraphQLBody, cookies: setCookies(response.headers) };
  }

  /** The error a refused mutation gets over HTTP, from each driver. */
  function expectRefused(error: { message: string; extensions?: Record<string, unknown> } | undefined) {
    expect(error?.message).toBe('Invalid or missing CSRF token');
    expect(error?.extensions).toEqual(platform.kind === 'express' ? { code: 'FORBIDDEN', originalError: REFUSED } : { code: 'CSRF_TOKEN_INVALID', http: { status: 403 } });
  }

  async function tokenFor(jar: CookieJar): Promise<string> {
    const { body } = await gql(jar, '{ csrfToken }');
    const token = body.data?.csrfToken as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{86}$/);
    return token;
  }

  /** The mutation that the setup guards. */
  const mutation = global ? 'mutation { note }' : 'mutation { deposit(amount: 5) }';
  const field = global ? 'note' : 'deposit';
  const read = global ? '{ notes }' : '{ balance }';

  it('runs a mutation that carries the token in the x-csrf-token header', async () => {
    const jar = new CookieJar();
    const token = await tokenFor(jar);
    const first = await gql(jar, mutation, token);
    expect(first.body).toEqual({ data: { [field]: global ? 1 : 5 } });
    // Two mutations of one document: one HTTP request, one check.
    const both = await gql(jar, global ? 'mutation { a: note b: note }' : 'mutation { a: deposit(amount: 1) b: deposit(amount: 2) }', token);
    expect(both.body).toEqual({ data: global ? { a: 2, b: 3 } : { a: 6, b: 8 } });
  });

  it('refuses a mutation without a token, with a forged one or with another session\'s: the resolver never runs', async () => {
    const jar = new CookieJar();
    await tokenFor(jar);
    const otherToken = await tokenFor(new CookieJar());
    for (const token of [undefined, randomBytes(64).toString('base64url'), 'garbage', otherToken]) {
      const refused = await gql(jar, mutation, token);
      expect(refused.body.data ?? null).toBeNull();
      expect(refused.body.errors).toHaveLength(1);
      expect(refused.body.errors![0].message).toBe('Invalid or missing CSRF token');
      if (platform.kind === 'express') {
        // Apollo under Nest: HTTP 200, Nest's translation of a 403, with the error's body.
        expect(refused.status).toBe(200);
        expect(refused.body.errors![0].extensions).toEqual({ code: 'FORBIDDEN', originalError: REFUSED });
      } else {
        // Mercurius: the error's own status and extensions.
        expect(refused.status).toBe(403);
        expect(refused.body.errors![0].extensions).toEqual({ code: 'CSRF_TOKEN_INVALID', http: { status: 403 } });
      }
    }
    expect((await gql(jar, read)).body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
  });

  it('checks one HTTP request once: a sign-in (regenerate(), which replaces the secret) followed by another guarded mutation in the same document runs both', async () => {
    const jar = new CookieJar();
    const token = await tokenFor(jar);
    const before = jar.get('sid');
    const both = await gql(jar, `mutation { signIn ${mutation.slice('mutation { '.length, -2)} }`, token);
    expect(both.body).toEqual({ data: { signIn: true, [field]: global ? 1 : 5 } });
    expect(jar.get('sid')).not.toBe(before);
    // The old token belonged to the old secret: the new session needs a new one.
    expect((await gql(jar, mutation, token)).body.data ?? null).toBeNull();
    expect((await gql(jar, mutation, await tokenFor(jar))).body).toEqual({ data: { [field]: global ? 2 : 10 } });
  });

  it('accepts the token of the readable cookie in the x-xsrf-token header (csrf.cookie)', async () => {
    const jar = new CookieJar();
    await tokenFor(jar);
    const cookie = jar.get('XSRF-TOKEN')!;
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{86}$/);
    expect((await post(jar, { query: mutation }, { 'x-xsrf-token': cookie })).body).toEqual({ data: { [field]: global ? 1 : 5 } });
    expectRefused((await post(jar, { query: mutation }, { 'x-xsrf-token': 'garbage' })).body.errors?.[0]);
  });

  it('refuses the mutation a document picks with operationName, and lets its query through', async () => {
    const jar = new CookieJar();
    await tokenFor(jar);
    const document = `query Q ${read} mutation M ${mutation.slice('mutation '.length)}`;
    const refused = await post(jar, { query: document, operationName: 'M' });
    expect(refused.status).toBe(platform.kind === 'express' ? 200 : 403);
    expect(refused.body.data ?? null).toBeNull();
    expect(refused.body.errors).toHaveLength(1);
    expectRefused(refused.body.errors![0]);
    expect((await post(jar, { query: document, operationName: 'Q' })).body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
  });

  it('refuses the mutation of a batch without a token, answering its query; with the token both run', async () => {
    const jar = new CookieJar();
    const token = await tokenFor(jar);
    const refused = await post(jar, [{ query: read }, { query: mutation }]);
    // Apollo answers a batch 200; Mercurius gives it the status of its errors.
    expect(refused.status).toBe(platform.kind === 'express' ? 200 : 403);
    expect(refused.body).toHaveLength(2);
    const [query, guarded] = refused.body as unknown as GraphQLBody[];
    expect(query).toEqual({ data: { [read.slice(2, -2)]: 0 } });
    expect(guarded.data ?? null).toBeNull();
    expect(guarded.errors).toHaveLength(1);
    expectRefused(guarded.errors![0]);
    const passed = await post(jar, [{ query: read }, { query: mutation }], { 'x-csrf-token': token });
    expect(passed.status).toBe(200);
    expect(passed.body).toEqual([{ data: { [read.slice(2, -2)]: 0 } }, { data: { [field]: global ? 1 : 5 } }]);
  });

  it('lets a query through by GET; a mutation by GET never runs (both drivers answer 405), token or not', async () => {
    const jar = new CookieJar();
    const token = await tokenFor(jar);
    const get = (query: string) => t.http().get('/graphql').query({ query }).set('Cookie', jar.header()).set('x-csrf-token', token).set('apollo-require-preflight', 'true');
    expect((await get(read)).body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
    const refused = await get(mutation);
    expect(refused.status).toBe(405);
    expect((refused.body as GraphQLBody).data ?? null).toBeNull();
    expect((await gql(jar, read)).body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
  });

  it('refuses a mutation sent over a WebSocket (no HTTP request to show a token), even with the token and the cookie on the upgrade', async () => {
    const jar = new CookieJar();
    const token = await tokenFor(jar);
    const headers = { cookie: jar.header(), 'x-csrf-token': token };
    class UpgradeWithHeaders extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers });
      }
    }
    const url = `ws://127.0.0.1:${(t.server.address() as AddressInfo).port}/graphql`;
    const client = createClient({ url, webSocketImpl: UpgradeWithHeaders, retryAttempts: 0, lazy: true });
    try {
      const results: GraphQLBody[] = [];
      await new Promise<void>((resolve, reject) => {
        client.subscribe({ query: mutation }, { next: (value) => void results.push(value as GraphQLBody), error: reject, complete: resolve });
      });
      expect(results).toHaveLength(1);
      expect(results[0].data ?? null).toBeNull();
      expect(results[0].errors).toHaveLength(1);
      expect(results[0].errors![0].message).toBe('Invalid or missing CSRF token');
      expect(results[0].errors![0].extensions).toEqual({ code: 'CSRF_TOKEN_INVALID', http: { status: 403 } });
    } finally {
      await client.dispose();
    }
    expect((await gql(jar, read)).body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
  });

  it('lets queries through without a token, over POST, creating no session', async () => {
    const jar = new CookieJar();
    const response = await gql(jar, read);
    expect(response.body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
    expect(response.cookies).toEqual([]);
  });
});
