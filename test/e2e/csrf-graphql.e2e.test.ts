import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  });
  afterAll(() => t?.close());

  async function gql(jar: CookieJar, query: string, token?: string) {
    const request = t.http().post('/graphql').set('Cookie', jar.header());
    if (token !== undefined) request.set('x-csrf-token', token);
    const response = await request.send({ query });
    jar.take(response);
    return { status: response.status, body: response.body as GraphQLBody, cookies: setCookies(response.headers) };
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

  it('lets queries through without a token, over POST, creating no session', async () => {
    const jar = new CookieJar();
    const response = await gql(jar, read);
    expect(response.body).toEqual({ data: { [read.slice(2, -2)]: 0 } });
    expect(response.cookies).toEqual([]);
  });
});
