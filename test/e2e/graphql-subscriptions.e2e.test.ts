import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { createClient, type Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { MemoryStore } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { subscriptionEndsKept } from '../../src/subscriptions/subscription-sessions.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type Platform, type TestApp } from '../support/platforms.js';
import { redisUrl } from '../support/services.js';
import { graphqlSkipReason, graphqlStores } from '../support/graphql.js';

const PREFIX = `test:e2e_subscriptions_${randomBytes(4).toString('hex')}:`;

const reason = graphqlSkipReason();
if (reason !== undefined) console.warn(`GraphQL subscription tests skipped: ${reason}`);
const fixture = reason === undefined ? await import('./graphql-subscriptions.fixture.js') : undefined;

interface Driver {
  name: string;
  platform: Platform;
  module: (store: SessionStore) => ReturnType<NonNullable<typeof fixture>['apolloSubscriptionsModule']>;
  /** Makes every live badge send its session again. */
  tick: (app: TestApp['app']) => void;
  /**
   * How a subscription whose session ended ends: its connection closes (graphql-ws: 4403, and its
   * client reconnects), or it completes (Mercurius: its own pubsub is closed).
   */
  endedBy: 'close' | 'complete';
}

const drivers: Driver[] = [
  {
    name: 'Apollo (graphql-ws) on Express',
    platform: platforms.find((p) => p.name === 'express')!,
    module: (store) => fixture!.apolloSubscriptionsModule(store),
    tick: () => void fixture!.ticks.emit('tick'),
    endedBy: 'close',
  },
  {
    name: 'Mercurius on Fastify',
    platform: platforms.find((p) => p.name === 'fastify')!,
    module: (store) => fixture!.mercuriusSubscriptionsModule(store),
    tick: (app) => {
      const fastify = app.getHttpAdapter().getInstance() as { graphql: { pubsub: { publish(event: { topic: string; payload: unknown }): void } } };
      fastify.graphql.pubsub.publish({ topic: 'TICK', payload: {} });
    },
    endedBy: 'complete',
  },
];

const stores = graphqlStores(PREFIX, reason === undefined ? redisUrl() : undefined);

const cases = drivers.flatMap((driver) => stores.map((store) => ({ driver, store, name: `${driver.name} with ${store.name}` })));

interface Badge {
  userId: number | null;
  sessionId: string | null;
  messages: string[];
}

interface Result {
  data?: Record<string, Badge> | null;
  errors?: { message: string }[];
}

/** What one subscription received, and how it ended (`complete`, or the error: a CloseEvent when the socket closed). */
interface Feed {
  results: Result[];
  ended: Promise<{ how: 'complete' } | { how: 'error'; error: unknown }>;
  next(count: number): Promise<Result[]>;
  stop(): void;
}

(reason === undefined ? describe : describe.skip).each(cases.map((each, index) => ({ ...each, index })))('GraphQL subscriptions: $name', ({ driver, store: kind, index }) => {
  let t: TestApp;
  let url: string;
  let jar: CookieJar;
  const clients: Client[] = [];

  beforeAll(async () => {
    t = await driver.platform.create(driver.module(kind.create(index)));
    await t.app.listen(0, '127.0.0.1');
    url = `ws://127.0.0.1:${(t.server.address() as AddressInfo).port}/graphql`;
  });
  afterAll(() => t?.close());
  beforeEach(() => {
    jar = new CookieJar();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await Promise.all(clients.splice(0).map((client) => Promise.resolve(client.dispose())));
  });

  async function gql(query: string, cookies: CookieJar = jar, app: TestApp = t) {
    const response = await app.http().post('/graphql').set('Cookie', cookies.header()).send({ query });
    cookies.take(response);
    return response.body as { data?: Record<string, unknown>; errors?: { message: string }[] };
  }

  async function login(userId = 42) {
    expect(await gql(`mutation { login(userId: ${userId}) }`)).toEqual({ data: { login: true } });
  }

  /**
   * A graphql-ws client whose WebSocket (node's `ws`) sends the jar's cookies as they are when it
   * connects, or a Cookie header given as it is.
   */
  function client(cookies: CookieJar | string = jar, options: { retryAttempts?: number; url?: string } = {}): Client {
    class CookieWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        const header = typeof cookies === 'string' ? cookies : cookies.header();
        super(address, protocols, { headers: header === '' ? {} : { cookie: header } });
      }
    }
    const created = createClient({ url: options.url ?? url, webSocketImpl: CookieWebSocket, retryAttempts: options.retryAttempts ?? 0, retryWait: async () => undefined, lazy: true });
    clients.push(created);
    return created;
  }

  function subscribe(on: Client, query: string): Feed {
    const results: Result[] = [];
    const waiting: { count: number; resolve: (value: Result[]) => void }[] = [];
    let settle!: (value: { how: 'complete' } | { how: 'error'; error: unknown }) => void;
    const ended = new Promise<{ how: 'complete' } | { how: 'error'; error: unknown }>((resolve) => (settle = resolve));
    const stop = on.subscribe<Record<string, Badge>>(
      { query },
      {
        next: (value) => {
          results.push(value as Result);
          for (const each of waiting.filter((w) => results.length >= w.count)) each.resolve(results.slice(0, each.count));
        },
        error: (error) => settle({ how: 'error', error }),
        complete: () => settle({ how: 'complete' }),
      },
    );
    return {
      results,
      ended,
      stop,
      next: (count) => (results.length >= count ? Promise.resolve(results.slice(0, count)) : new Promise((resolve) => waiting.push({ count, resolve }))),
    };
  }

  const engine = () => t.app.get(SessionEngine);
  const tick = () => driver.tick(t.app);

  /**
   * The error messages a subscription that failed to start got: in a `next` result before `complete`
   * (Apollo's graphql-ws), or as the `error` message (Mercurius).
   */
  async function startErrors(feed: Feed): Promise<string[]> {
    const ended = await feed.ended;
    if (ended.how === 'error') return (ended.error as { message: string }[]).map((each) => each.message);
    expect(feed.results).toHaveLength(1);
    expect(feed.results[0].data ?? null).toBeNull();
    return feed.results[0].errors!.map((each) => each.message);
  }

  it('a subscription sees the signed-in user of the cookie its connection opened with (@Session(), load(context), current(), field resolvers), and its flash messages without consuming them', async () => {
    await login(42);
    const feed = subscribe(client(), 'subscription { badge { userId sessionId messages } }');
    const [first] = await feed.next(1);
    expect(first).toEqual({ data: { badge: { userId: 42, sessionId: expect.stringMatching(/^[\w-]{43}$/), messages: ['Welcome 42'] } } });
    tick();
    const [, second] = await feed.next(2);
    expect(second.data?.badge.userId).toBe(42);
    // flash.peek() in the subscription consumed nothing: the next HTTP request still has the message.
    const other = subscribe(client(), 'subscription { badgeFromContext { userId messages viewerId } }');
    expect((await other.next(1))[0]).toEqual({ data: { badgeFromContext: { userId: 42, messages: [], viewerId: 42 } } });
    // current() where each event is made: the iterator's next() runs after the resolver call.
    const current = subscribe(client(), 'subscription { currentBadge { userId } }');
    expect((await current.next(1))[0]).toEqual({ data: { currentBadge: { userId: 42 } } });
    tick();
    expect((await current.next(2))[1]).toEqual({ data: { currentBadge: { userId: 42 } } });
    const generator = subscribe(client(), 'subscription { currentTicker { userId } }');
    expect(await generator.next(2)).toEqual([{ data: { currentTicker: { userId: 42 } } }, { data: { currentTicker: { userId: 42 } } }]);
    // And in the iterator's return(), called as the client leaves.
    fixture!.closedWith.length = 0;
    const closing = subscribe(client(), 'subscription { currentUntilClosed { userId } }');
    expect((await closing.next(1))[0]).toEqual({ data: { currentUntilClosed: { userId: 42 } } });
    closing.stop();
    await vi.waitFor(() => expect(fixture!.closedWith).toEqual([42]));
    expect((await gql('{ userId }')).data).toEqual({ userId: 42 });
    // Over HTTP, a query's result that has a next() of its own is left as it is.
    expect((await gql('{ cursor { position following } }')).data).toEqual({ cursor: { position: 42, following: 43 } });
  });

  it('a connection without a cookie, or with a cookie the store does not know, sees an empty session and hangs on nothing', async () => {
    const anonymous = subscribe(client(new CookieJar()), 'subscription { badge { userId sessionId messages } }');
    expect((await anonymous.next(1))[0]).toEqual({ data: { badge: { userId: null, sessionId: null, messages: [] } } });

    await login(5);
    const stale = new CookieJar();
    stale.set('sid', jar.get('sid')!);
    await gql('mutation { logout }');
    const unknown = subscribe(client(stale), 'subscription { badge { userId sessionId } }');
    expect((await unknown.next(1))[0]).toEqual({ data: { badge: { userId: null, sessionId: null } } });
  });

  it('a malformed, tampered or garbage Cookie header on the upgrade reads as an empty session, with nothing logged', async () => {
    await login(13);
    const logged = captureErrors();
    const [id, signature] = jar.get('sid')!.split('.');
    const tampered = `${id}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
    for (const header of [`sid=${tampered}`, `sid=${id}`, 'sid=%zz%; sid=abc.def', 'sid=', '=;;=; sid', `sid="${'x'.repeat(5000)}"`, 'sid=ÿþ']) {
      const feed = subscribe(client(header), 'subscription { badge { userId sessionId } }');
      expect((await feed.next(1))[0], header).toEqual({ data: { badge: { userId: null, sessionId: null } } });
    }
    expect(logged()).toEqual([]);
    // The real cookie still reads the session.
    expect((await subscribe(client(), 'subscription { badge { userId } }').next(1))[0]).toEqual({ data: { badge: { userId: 13 } } });
  });

  it('a batch of operations in one HTTP request reads the session once and saves it once, the login cookie on that response', async () => {
    const store = new ControlledStore<SessionStore>(kind.create(index + 200));
    const own = await driver.platform.create(driver.module(store));
    try {
      const cookies = new CookieJar();
      await gql('mutation { login(userId: 51) }', cookies, own);
      store.reset();
      const response = await own.http().post('/graphql').set('Cookie', cookies.header()).send([{ query: '{ userId }' }, { query: 'mutation { login(userId: 52) }' }]);
      expect(response.status).toBe(200);
      expect(response.body).toHaveLength(2);
      expect(response.body[1]).toEqual({ data: { login: true } });
      expect(store.count('get')).toBe(1);
      expect(store.count('set') + store.count('patch')).toBe(1);
      const before = cookies.get('sid');
      expect(cookies.take(response).map((cookie) => cookie.name)).toEqual(['sid']);
      expect(cookies.get('sid')).not.toBe(before);
      expect((await gql('{ userId }', cookies, own)).data).toEqual({ userId: 52 });
    } finally {
      await own.close();
    }
  });

  it('a guard reads the session with SessionService.load(context): refused without a signed-in session, let through with one', async () => {
    const refused = subscribe(client(new CookieJar()), 'subscription { guardedBadge { userId } }');
    expect(await startErrors(refused)).toEqual(['sign in first']);

    await login(8);
    const allowed = subscribe(client(), 'subscription { guardedBadge { userId } }');
    expect((await allowed.next(1))[0]).toEqual({ data: { guardedBadge: { userId: 8 } } });
  });

  it(`logout over HTTP ends the subscriptions of that session on this instance: the client sees ${driver.endedBy === 'close' ? 'the socket close (4403 Session ended)' : 'them complete'}`, async () => {
    await login(42);
    const feed = subscribe(client(), 'subscription { badge { userId sessionId } }');
    const [first] = await feed.next(1);
    const id = first.data!.badge.sessionId!;
    expect(engine().connections.count('default', id)).toBe(1);

    // Another visitor's subscription is not touched.
    const someoneElse = new CookieJar();
    await gql('mutation { login(userId: 7) }', someoneElse);
    const unrelated = subscribe(client(someoneElse), 'subscription { badge { userId } }');
    await unrelated.next(1);

    await gql('mutation { logout }');
    const ended = await feed.ended;
    if (driver.endedBy === 'close') expect(ended).toMatchObject({ how: 'error', error: { code: 4403, reason: 'Session ended' } });
    else expect(ended).toEqual({ how: 'complete' });
    expect(engine().connections.count('default', id)).toBe(0);

    tick();
    expect((await unrelated.next(2))[1]).toEqual({ data: { badge: { userId: 7 } } });
  });

  it('a login (regenerate()) over HTTP ends the subscriptions of the old id; a new connection carries the new cookie', async () => {
    await gql('mutation { login(userId: 1) }');
    const live = client(jar, { retryAttempts: 1 });
    const feed = subscribe(live, 'subscription { badge { userId } }');
    expect((await feed.next(1))[0]).toEqual({ data: { badge: { userId: 1 } } });
    await gql('mutation { login(userId: 2) }');
    if (driver.endedBy === 'close') {
      // graphql-ws' client retries after 4403 and subscribes again, with the jar's cookie as it is now.
      expect((await feed.next(2))[1]).toEqual({ data: { badge: { userId: 2 } } });
    } else {
      expect(await feed.ended).toEqual({ how: 'complete' });
      // The lazy client closed its idle connection: the next subscription opens one with the new cookie.
      expect((await subscribe(live, 'subscription { badge { userId } }').next(1))[0]).toEqual({ data: { badge: { userId: 2 } } });
    }
  });

  it('a change in a subscription throws SessionReadOnlyError, which the client gets as the error; nothing is changed', async () => {
    const logged = captureErrors();
    await login(3);
    for (const [what, pattern] of [
      ['set', /read-only over a GraphQL WebSocket \(a subscription, or a query or mutation sent over it\): session\.set\('visits'\) cannot be saved/],
      ['flash', /read-only over a GraphQL WebSocket \(a subscription, or a query or mutation sent over it\): flash messages cannot be added or consumed/],
      ['regenerate', /read-only over a GraphQL WebSocket \(a subscription, or a query or mutation sent over it\): session\.regenerate\(\) cannot send the new id/],
    ] as const) {
      const feed = subscribe(client(), `subscription { counting(what: "${what}") { userId } }`);
      const messages = await startErrors(feed);
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatch(pattern);
    }
    expect(logged()).toHaveLength(3);
    expect(logged().every((line) => line.includes('read-only'))).toBe(true);
    // What the client reads in full: what was refused, why, and where to do it instead.
    const set = subscribe(client(), 'subscription { counting(what: "set") { userId } }');
    expect(await startErrors(set)).toEqual([
      "Session 'default' is read-only over a GraphQL WebSocket (a subscription, or a query or mutation sent over it): session.set('visits') cannot be saved, since a WebSocket has no response to carry a cookie. Change the session in a query or mutation over HTTP.",
    ]);
    // The session was neither changed nor regenerated: the HTTP cookie still reads it, flash included.
    expect((await gql('{ userId }')).data).toEqual({ userId: 3 });
    const feed = subscribe(client(), 'subscription { badge { userId messages } }');
    expect((await feed.next(1))[0]).toEqual({ data: { badge: { userId: 3, messages: ['Welcome 3'] } } });
  });

  it('a query or a mutation sent over the WebSocket (graphql-ws, Mercurius with fullWsTransport) reads the same session, read-only, and registers nothing of its own', async () => {
    await login(11);
    const logged = captureErrors();
    await vi.waitFor(() => expect(subscriptionEndsKept(engine())).toBe(0)); // the earlier tests' connections are gone
    const socket = client();
    const query = subscribe(socket, '{ userId }');
    expect((await query.next(1))[0]).toEqual({ data: { userId: 11 } });
    // Mercurius answers it at once: nothing of it lasts, nothing hangs on the session (graphql-ws
    // registers its connection, as for a subscription).
    if (driver.endedBy === 'complete') expect(subscriptionEndsKept(engine())).toBe(0);
    const mutation = subscribe(socket, 'mutation { login(userId: 12) }');
    expect(await startErrors(mutation)).toEqual(["Session 'default' is read-only over a GraphQL WebSocket (a subscription, or a query or mutation sent over it): session.regenerate() cannot send the new id, since a WebSocket has no response to carry a cookie. Change the session in a query or mutation over HTTP."]);
    expect(logged()).toEqual([expect.stringMatching(/read-only/)]);
    expect((await gql('{ userId }')).data).toEqual({ userId: 11 });
  });

  it('a closed connection leaves nothing registered on its session (no leak), and many subscriptions of one connection register once', async () => {
    await login(9);
    const one = client();
    const feeds = [1, 2, 3].map(() => subscribe(one, 'subscription { badge { sessionId } }'));
    const ids = await Promise.all(feeds.map(async (feed) => (await feed.next(1))[0].data!.badge.sessionId!));
    expect(new Set(ids).size).toBe(1);
    expect(engine().connections.count('default', ids[0])).toBe(1);
    const two = client();
    await subscribe(two, 'subscription { badge { sessionId } }').next(1);
    expect(engine().connections.count('default', ids[0])).toBe(2);

    await one.dispose();
    await vi.waitFor(() => expect(engine().connections.count('default', ids[0])).toBe(1));
    feeds.forEach((feed) => feed.stop());
    await two.dispose();
    await vi.waitFor(() => expect(engine().connections.count('default', ids[0])).toBe(0));
  });

  it('a subscription that ends leaves nothing of itself behind while its connection stays open: one kept open and 50 stopped keep one end, not 51', async () => {
    const kept = () => subscriptionEndsKept(engine());
    await vi.waitFor(() => expect(kept()).toBe(0));
    await login(21);
    const socket = client();
    const open = subscribe(socket, 'subscription { badge { sessionId } }');
    const id = (await open.next(1))[0].data!.badge.sessionId!;
    for (let i = 0; i < 50; i++) {
      const feed = subscribe(socket, 'subscription { badge { sessionId } }');
      await feed.next(1);
      feed.stop();
    }
    await vi.waitFor(() => expect(kept()).toBe(1));
    expect(engine().connections.count('default', id)).toBe(1);
    // The one still open still ends with its session.
    await gql('mutation { logout }');
    const ended = await open.ended;
    if (driver.endedBy === 'close') expect(ended).toMatchObject({ how: 'error', error: { code: 4403 } });
    else expect(ended).toEqual({ how: 'complete' });
    expect(kept()).toBe(0);
    expect(engine().connections.count('default', id)).toBe(0);
  });

  it('a logout confirmed while a subscription is still reading its session from the store ends that subscription', async () => {
    // An app of its own, on a store whose calls the test slows down.
    const store = new ControlledStore<SessionStore>(kind.create(index + 100));
    const slow = await driver.platform.create(driver.module(store));
    try {
      await slow.app.listen(0, '127.0.0.1');
      const slowUrl = `ws://127.0.0.1:${(slow.server.address() as AddressInfo).port}/graphql`;
      const own = new CookieJar();
      await gql('mutation { login(userId: 31) }', own, slow);
      const id = (await subscribe(client(own, { url: slowUrl }), 'subscription { badge { sessionId } }').next(1))[0].data!.badge.sessionId!;
      const slowEngine = slow.app.get(SessionEngine);
      store.reset();
      store.delay = 400; // the subscription's read answers late...
      const late = subscribe(client(own, { url: slowUrl }), 'subscription { badge { userId } }');
      await vi.waitFor(() => expect(store.count('get')).toBe(1), { interval: 5 });
      store.delay = 0; // ...after the logout, whose calls answer at once, is confirmed.
      await gql('mutation { logout }', own, slow);
      expect(slowEngine.connections.count('default', id)).toBe(0);
      const ended = await Promise.race([late.ended, new Promise((resolve) => setTimeout(() => resolve('still running'), 2000))]);
      if (driver.endedBy === 'close') expect(ended).toMatchObject({ how: 'error', error: { code: 4403, reason: 'Session ended' } });
      else expect(ended).toEqual({ how: 'complete' });
      expect(slowEngine.connections.count('default', id)).toBe(0);
      await vi.waitFor(() => expect(subscriptionEndsKept(slowEngine)).toBe(0));
    } finally {
      await Promise.all(clients.splice(0).map((each) => Promise.resolve(each.dispose())));
      await slow.close();
    }
  });

  it('a cookie whose session the store does not know registers nothing once read', async () => {
    await login(41);
    const stale = new CookieJar();
    stale.set('sid', jar.get('sid')!);
    const id = (await subscribe(client(jar), 'subscription { badge { sessionId } }').next(1))[0].data!.badge.sessionId!;
    await gql('mutation { logout }');
    const kept = subscriptionEndsKept(engine());
    const unknown = subscribe(client(stale), 'subscription { badge { userId } }');
    expect((await unknown.next(1))[0]).toEqual({ data: { badge: { userId: null } } });
    expect(engine().connections.count('default', id)).toBe(0);
    expect(subscriptionEndsKept(engine())).toBe(kept);
  });
});

(reason === undefined ? describe : describe.skip)('GraphQL subscriptions: an Apollo context function of the app\'s own', () => {
  const express = platforms.find((p) => p.name === 'express')!;

  /** The badge a subscription and a query over the socket read, for an app whose context function is `context`. */
  async function overTheSocket(context: (value: { req?: unknown; extra?: { request?: unknown } }) => object) {
    const t = await express.create(fixture!.apolloSubscriptionsModule(new MemoryStore({ sweepInterval: 0 }), context));
    const logged = captureErrors();
    try {
      await t.app.listen(0, '127.0.0.1');
      const jar = new CookieJar();
      jar.take(await t.http().post('/graphql').send({ query: 'mutation { login(userId: 61) }' }));
      class CookieWebSocket extends WebSocket {
        constructor(address: string, protocols?: string | string[]) {
          super(address, protocols, { headers: { cookie: jar.header() } });
        }
      }
      const client = createClient({ url: `ws://127.0.0.1:${(t.server.address() as AddressInfo).port}/graphql`, webSocketImpl: CookieWebSocket, retryAttempts: 0, lazy: true });
      const first = (query: string) => new Promise<Result>((resolve, reject) => client.subscribe({ query }, { next: (value) => resolve(value as Result), error: reject, complete: () => undefined }));
      try {
        const badge = await first('subscription { badge { userId } }');
        const again = await first('subscription { badge { userId } }');
        return { badge, again, query: await first('{ userId }'), logged: logged() };
      } finally {
        await client.dispose();
      }
    } finally {
      await t.close();
    }
  }

  it('one that sets req to the upgrade request (extra.request) and keeps extra reads the session', async () => {
    const { badge, query, logged } = await overTheSocket(({ req, extra }) => ({ req: extra?.request ?? req, extra }));
    expect(badge).toEqual({ data: { badge: { userId: 61 } } });
    expect(query).toEqual({ data: { userId: 61 } });
    expect(logged).toEqual([]);
  });

  it('one that drops extra gets an error whose cause only the server log names, once per resolver however often a client asks', async () => {
    const { badge, again, query, logged } = await overTheSocket(({ req, extra }) => ({ req: extra?.request ?? req }));
    for (const result of [badge, again, query]) expect(result.errors?.map((each) => each.message)).toEqual(['No session is available here; the server log says why.']);
    expect(logged).toEqual([expect.stringMatching(/LiveResolver\.badge: .*keep graphql-ws' extra/), expect.stringMatching(/LiveResolver\.userId: .*keep graphql-ws' extra/)]);
  });
});

function captureErrors(): () => string[] {
  const lines: string[] = [];
  const keep = (...args: unknown[]) => void lines.push(args.map((arg) => (arg instanceof Error ? (arg.stack ?? arg.message) : String(arg))).join(' '));
  vi.spyOn(Logger.prototype, 'error').mockImplementation(keep);
  return () => lines;
}
