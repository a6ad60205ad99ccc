import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import request from 'supertest';
import { AsyncLocalStorage } from 'node:async_hooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CookieStore, MemoryStore } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { ControlledStore } from '../support/controlled-store.js';
import { redisUrl } from '../support/services.js';
import { connect, createGatewayApp, gatewayModule, greetingModule, holds, seen, type GatewayApp, type Kind, type SocketTestClient, type Transport } from './gateways.fixture.js';

const REDIS_URL = redisUrl();
const PREFIX = `test:e2e_gateways_${randomBytes(4).toString('hex')}:`;

let redis: Redis;
const stores = [
  { name: 'MemoryStore', create: () => new MemoryStore({ sweepInterval: 0 }) },
  { name: 'RedisStore', create: (index: number) => new RedisStore({ client: redis, prefix: `${PREFIX}${index}:` }) },
];
const kinds: Kind[] = ['express', 'fastify'];
const transports: Transport[] = ['socket.io', 'ws'];
const cases = kinds.flatMap((kind) => transports.flatMap((transport) => stores.map((store) => ({ kind, transport, store, name: `${transport} on ${kind} with ${store.name}` }))));

beforeAll(async () => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await redis.ping();
});

afterAll(async () => {
  const keys = await redis.keys(`${PREFIX}*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

/** @nestjs/websockets 11's exception filter sends nothing to `ws` clients (it calls `emit`, which a WebSocket only fires locally); 12's sends them. */
const NEST_MAJOR = Number((JSON.parse(readFileSync(new URL('../../node_modules/@nestjs/websockets/package.json', import.meta.url), 'utf8')) as { version: string }).version.split('.')[0]);

/**
 * Sends `event` and expects Nest's `exception` event instead of an answer, with `payload`; where
 * Nest sends no exception to this client (ws on NestJS 11), expects no answer at all.
 */
async function expectException(client: SocketTestClient, transport: Transport, event: string, data: unknown, payload: Record<string, unknown>, exact = true) {
  if (transport === 'ws' && NEST_MAJOR < 12) {
    const answered = await Promise.race([client.request(event, data).then(() => true, () => false), new Promise((resolve) => setTimeout(() => resolve(false), 300))]);
    expect(answered).toBe(false);
    return;
  }
  const exception = client.nextException();
  void client.request(event, data).catch(() => undefined); // no answer comes: the exception does
  if (exact) expect(await exception).toEqual(payload);
  else expect(await exception).toMatchObject(payload);
}

/** Waits until `condition` holds (the server's side of a close is seen a moment after the client's). */
async function until(condition: () => boolean, what: string) {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(cases.map((each, index) => ({ ...each, index })))('gateways: $name', ({ kind, transport, store: storeKind, index }) => {
  let t: GatewayApp;
  let store: ControlledStore<SessionStore>;
  let jar: CookieJar;
  const open: SocketTestClient[] = [];

  beforeAll(async () => {
    store = new ControlledStore(storeKind.create(index));
    t = await createGatewayApp(kind, transport, gatewayModule({ store }));
  });
  afterAll(() => t?.close());
  beforeEach(() => {
    jar = new CookieJar();
    return async () => {
      for (const client of open.splice(0)) client.close();
    };
  });

  const connections = () => t.app.get(SessionEngine).connections;

  async function http(method: 'get' | 'post', path: string, cookies: CookieJar = jar) {
    const response = await request(t.server)[method](path).set('Cookie', cookies.header());
    cookies.take(response);
    return response;
  }

  async function login(userId = 42, cookies: CookieJar = jar) {
    expect((await http('post', `/login?user=${userId}`, cookies)).status).toBe(201);
  }

  async function socket(cookies: CookieJar = jar) {
    const client = await connect(transport, t.url, cookies.header());
    open.push(client);
    return client;
  }

  /** The id of the session in the jar's cookie. */
  const sessionId = (cookies: CookieJar = jar) => (cookies.get('sid') ?? '').split('.')[0];
  /** Answers of `whoami` (on ws, answers of overlapping messages are told apart by their shape). */
  const isWhoami = (answer: unknown) => typeof answer === 'object' && answer !== null && 'isNew' in answer;

  it('a handler reads the session of the user signed in over HTTP, fresh from the store at each message', async () => {
    await login(42);
    const client = await socket();
    expect(await client.request('whoami')).toEqual({ userId: 42, note: null, visits: 0, isNew: false });
    // A change made over HTTP while the socket is open is seen by its next message.
    await http('post', '/note?text=from-http');
    expect(await client.request('whoami')).toEqual({ userId: 42, note: 'from-http', visits: 0, isNew: false });
  });

  it("a handler's changes are saved after it, with no cookie and the same id, and the next HTTP request sees them", async () => {
    await login(7);
    const id = jar.get('sid');
    const client = await socket();
    expect(await client.request('visit')).toBe(1);
    expect(await client.request('visit')).toBe(2);
    expect(await client.request('note', 'from-socket')).toEqual({ ok: true });
    const me = await http('get', '/me');
    expect(me.body).toEqual({ userId: 7, note: 'from-socket', visits: 2, current: null });
    expect(jar.get('sid')).toBe(id);
    // A flash read over the socket is consumed for HTTP too.
    expect(await client.request('flash')).toEqual({ info: ['Welcome 7'] });
    expect(await client.request('flash')).toEqual({ info: [] });
  });

  it('a guard reads the session with SessionService.load(context): refused without a sign-in, its change saved with one', async () => {
    const anonymous = await socket();
    await expectException(anonymous, transport, 'guarded', undefined, { status: 'error', message: 'sign in first' }, false);

    await login(5);
    const client = await socket();
    expect(await client.request('guarded')).toBe(1);
    expect(await client.request('guarded')).toBe(2);
    expect(await client.request('byClient')).toBe(5);
  });

  it('a logout over HTTP ends the sockets of that session, and only those; none is left registered', async () => {
    await login(1);
    const mine = [await socket(), await socket()];
    const otherJar = new CookieJar();
    await login(2, otherJar);
    const other = await socket(otherJar);
    for (const client of [...mine, other]) await client.request('whoami');
    expect(connections().size).toBe(3);

    await http('post', '/logout');
    await Promise.all(mine.map((client) => client.closed));
    expect(other.isOpen()).toBe(true);
    expect(await other.request('whoami')).toMatchObject({ userId: 2 });
    await until(() => connections().size === 1, 'the ended sockets to leave the registry');

    other.close();
    await other.closed;
    await until(() => connections().size === 0, 'the closed socket to leave the registry');
  });

  it('a message that starts while another runs reads the session fresh: a change over HTTP and an end in the store meanwhile are seen', async () => {
    await login(31);
    const client = await socket();
    const key = `hold-${index}`;
    const held = client.request('hold', key, (answer) => (answer as { held?: unknown } | null)?.held === key);
    await holds.reached(key); // its session is loaded, its handler waits
    await http('post', '/note?text=meanwhile');
    expect(await client.request('whoami', undefined, isWhoami)).toEqual({ userId: 31, note: 'meanwhile', visits: 0, isNew: false });
    // Ended in the store alone (expired, or ended on another instance): the next message has no
    // session, and the socket no longer hangs on it.
    await store.destroy(sessionId());
    expect(await client.request('whoami', undefined, isWhoami)).toEqual({ userId: null, note: null, visits: 0, isNew: true });
    expect(connections().count('default', sessionId())).toBe(0);
    holds.release(key);
    expect(await held).toEqual({ held: key, userId: 31, note: null }); // its own session, read when it started
  });

  it('two overlapping messages with the same event and payload (no ack on ws) each get the session they read', async () => {
    await login(34);
    const client = await socket();
    const key = `twin-${index}`;
    store.reset();
    const releaseFirst = store.holdNextAnswer('get');
    const first = client.request('hold', key, (answer) => (answer as { note?: unknown } | null)?.note === null);
    await until(() => store.calls.includes('get'), 'the first message to read its session');
    await http('post', '/note?text=between');
    const second = client.request('hold', key, (answer) => (answer as { note?: unknown } | null)?.note === 'between');
    await holds.reached(key); // the second one's parameter has its session; the first one's read is still held
    releaseFirst();
    holds.release(key);
    expect(await first).toEqual({ held: key, userId: 34, note: null });
    expect(await second).toEqual({ held: key, userId: 34, note: 'between' });
  });

  it('a message sent without an ack, with the same event and payload as one whose handler waits, reads the session fresh', async () => {
    await login(36);
    const client = await socket();
    const key = `tell-${index}`;
    client.send('holdTell', key);
    await holds.reached(key); // the first one's handler waits, its session loaded
    await http('post', '/note?text=between');
    store.reset();
    client.send('holdTell', key);
    await until(() => store.count('get') === 1, 'the second message to read its session');
    holds.release(key);
    expect(await client.event('held:null')).toEqual({ held: key, userId: 36, note: null });
    expect(await client.event('held:between')).toEqual({ held: key, userId: 36, note: 'between' });
  });

  it("overlapping messages each have their own session, and their changes merge key by key: a guard's change survives a message that starts while it waits", async () => {
    await login(32);
    const client = await socket();
    const key = `mark-${index}`;
    store.reset();
    const marked = client.request('marked', key, (answer) => typeof answer === 'object' && answer !== null && 'marked' in answer);
    await holds.reached(key); // its guard marked the session, and waits
    expect(await client.request('visit', undefined, (answer) => typeof answer === 'number')).toBe(1);
    holds.release(key);
    expect(await marked).toEqual({ marked: key, visits: 0 }); // its session was read before the visit
    expect(store.count('get')).toBe(2); // one read a message: its guard and its parameter share it
    expect((await http('get', '/value?key=marked')).body).toEqual({ value: key });
    expect((await http('get', '/value?key=visits')).body).toEqual({ value: 1 });
  });

  it('a logout confirmed while a message reads the session still ends the socket, gives the message no session, and leaves nothing registered', async () => {
    await login(33);
    const id = sessionId();
    const client = await socket();
    store.reset();
    const release = store.holdNextAnswer('get');
    delete seen.whoami;
    void client.request('whoami').catch(() => undefined); // no answer may come: the socket is ended
    await until(() => store.calls.includes('get'), 'the message to read its session');
    await http('post', '/logout'); // confirmed while the socket's read is in flight
    release();
    await until(() => !client.isOpen(), 'the socket to be ended');
    await client.closed;
    if (transport === 'ws') {
      // ws runs the handler of a socket that has closed (socket.io drops it): the read gave it no session.
      await until(() => seen.whoami !== undefined, 'the handler to run');
      expect(seen.whoami).toEqual({ userId: null, note: null, visits: 0, isNew: true });
    }
    await until(() => connections().count('default', id) === 0, 'the registry to forget the session');
  });

  it('SessionService.current() works in a handler marked @UseSession(), and its change is saved; a guard reads the session of a handler that asks for none', async () => {
    const anonymous = await socket(new CookieJar());
    await expectException(anonymous, transport, 'guardOnly', undefined, { status: 'error', message: 'sign in first' }, false);
    await login(11);
    const client = await socket();
    expect(await client.request('guardOnly')).toBe('let through');
    expect(await client.request('current')).toBe(11);
    expect((await http('get', '/me')).body).toMatchObject({ userId: 11, current: true });
  });

  it.runIf(transport === 'socket.io')('socket.io over HTTP long-polling reads and saves the session the same way, and is ended by a logout', async () => {
    await login(12);
    const client = await connect(transport, t.url, jar.header(), { polling: true });
    open.push(client);
    expect(await client.request('whoami')).toMatchObject({ userId: 12, isNew: false });
    expect(await client.request('visit')).toBe(1);
    expect((await http('get', '/me')).body).toMatchObject({ userId: 12, visits: 1 });
    await http('post', '/logout');
    await client.closed;
  });

  it('regenerate() over a socket is refused with SessionSocketError; the session is untouched', async () => {
    await login(3);
    const client = await socket();
    const answer = (await client.request('regenerate')) as { error: string; message: string };
    expect(answer.error).toBe('SessionSocketError');
    expect(answer.message).toMatch(/regenerate\(\) over a socket is refused.*regenerate over HTTP/);
    expect((await http('get', '/me')).body).toMatchObject({ userId: 3 });
  });

  it("destroy() over a socket ends the session's other sockets, keeps this one, and kills the cookie", async () => {
    await login(4);
    const [first, second] = [await socket(), await socket()];
    await second.request('whoami');
    expect(await first.request('logout')).toEqual({ ok: true, isNew: true });
    await second.closed;
    expect(first.isOpen()).toBe(true);
    expect(await first.request('whoami')).toEqual({ userId: null, note: null, visits: 0, isNew: true });
    expect((await http('get', '/me')).body).toEqual({ userId: null, note: null, visits: 0, current: null });
    await until(() => connections().size === 0, 'the registry to empty');
  });

  it('a socket without a session cookie gets an empty session that a change cannot persist (SessionSocketError), and nothing is stored', async () => {
    const client = await socket(new CookieJar());
    store.reset();
    expect(await client.request('whoami')).toEqual({ userId: null, note: null, visits: 0, isNew: true });
    const answer = (await client.request('note', 'x')) as { error: string; message: string };
    expect(answer.error).toBe('SessionSocketError');
    expect(answer.message).toMatch(/no stored session.*start the session over HTTP/);
    expect(store.calls).toEqual([]); // no cookie: no store call at all
    expect(connections().size).toBe(0);
  });

  it('a handler that asks for no session runs no code of ours: no store call, no registration', async () => {
    await login(6);
    const client = await socket();
    store.reset();
    expect(await client.request('untouched')).toBe('pong');
    expect(store.calls).toEqual([]);
    expect(connections().size).toBe(0);
  });

  it('messages of handlers not marked @UseSession() run in no AsyncLocalStorage (which would slow the whole process), with one store read each; a marked one does', async () => {
    await login(9);
    const client = await socket();
    const entered = vi.spyOn(AsyncLocalStorage.prototype, 'run');
    try {
      store.reset();
      expect(await client.request('whoami')).toMatchObject({ userId: 9 });
      expect(await client.request('visit')).toBe(1);
      expect(await client.request('whoami')).toMatchObject({ userId: 9, visits: 1 });
      expect(entered).not.toHaveBeenCalled();
      expect(store.calls.filter((call) => call === 'get')).toHaveLength(3);
      expect(await client.request('current')).toBe(9);
      expect(entered).toHaveBeenCalled();
    } finally {
      entered.mockRestore();
    }
  });

  it('a store outage during a message gives the client an exception it can recognise, and the socket goes on', async () => {
    await login(8);
    const client = await socket();
    expect(await client.request('visit')).toBe(1);

    const unavailable = { status: 'error', code: 'SESSION_STORE_UNAVAILABLE', message: 'Session store unavailable' };
    store.failNext('get');
    await expectException(client, transport, 'whoami', undefined, unavailable);
    store.failNext('patch');
    await expectException(client, transport, 'visit', undefined, unavailable);

    expect(client.isOpen()).toBe(true);
    expect(await client.request('visit')).toBe(2); // the failed save was not written
  });
});

describe.each(kinds.flatMap((kind) => transports.map((transport) => ({ kind, transport }))))('gateways with CookieStore: $transport on $kind', ({ kind, transport }) => {
  let t: GatewayApp;
  beforeAll(async () => {
    t = await createGatewayApp(kind, transport, gatewayModule({ store: new CookieStore({ secret: 'a-cookie-store-secret-long-enough-0123456789' }) }));
  });
  afterAll(() => t?.close());

  it('a handler reads the cookie session; a change, a flash read and regenerate() throw SessionSocketError', async () => {
    const jar = new CookieJar();
    jar.take(await request(t.server).post('/login?user=9'));
    const client = await connect(transport, t.url, jar.header());
    try {
      expect(await client.request('whoami')).toEqual({ userId: 9, note: null, visits: 0, isNew: false });
      const changed = (await client.request('note', 'x')) as { error: string; message: string };
      expect(changed.error).toBe('SessionSocketError');
      expect(changed.message).toMatch(/lives in its cookie \(CookieStore\), which cannot change over a socket/);
      expect(await client.request('flash')).toMatchObject({ error: 'SessionSocketError' });
      expect(await client.request('regenerate')).toMatchObject({ error: 'SessionSocketError' });
      expect(await client.request('whoami')).toEqual({ userId: 9, note: null, visits: 0, isNew: false });
    } finally {
      client.close();
    }
  });
});

describe.each(transports)("gateways with interceptor: 'global': %s on express", (transport) => {
  let t: GatewayApp;
  let store: ControlledStore;
  beforeAll(async () => {
    store = new ControlledStore();
    t = await createGatewayApp('express', transport, gatewayModule({ store, interceptor: 'global' }));
  });
  afterAll(() => t?.close());

  it('handlers that ask get their session (SessionService.current() too); those that do not run none of it', async () => {
    const jar = new CookieJar();
    jar.take(await request(t.server).post('/login?user=13'));
    const client = await connect(transport, t.url, jar.header());
    try {
      store.reset();
      expect(await client.request('untouched')).toBe('pong');
      expect(store.calls).toEqual([]);
      expect(await client.request('current')).toBe(13);
      expect(await client.request('visit')).toBe(1);
      expect((await request(t.server).get('/me').set('Cookie', jar.header())).body).toMatchObject({ userId: 13, visits: 1, current: true });
    } finally {
      client.close();
    }
  });
});

describe.each(kinds.flatMap((kind) => transports.map((transport) => ({ kind, transport }))))('gateways with CookieStore and userVersion: $transport on $kind', ({ kind, transport }) => {
  let t: GatewayApp;
  const versions = new Map<string, number>();
  beforeAll(async () => {
    const userVersion = (id: string) => versions.get(id);
    t = await createGatewayApp(kind, transport, gatewayModule({ store: new CookieStore({ secret: 'a-cookie-store-secret-long-enough-0123456789' }), userVersion }));
  });
  afterAll(() => t?.close());

  it("a bumped version (sign out everywhere) reaches an open socket: its next message sees no user", async () => {
    versions.set('21', 1);
    const jar = new CookieJar();
    jar.take(await request(t.server).post('/login-user?user=21'));
    const client = await connect(transport, t.url, jar.header());
    try {
      expect(await client.request('whoami')).toEqual({ userId: 21, note: null, visits: 0, isNew: false });
      versions.set('21', 2);
      expect(await client.request('whoami')).toEqual({ userId: null, note: null, visits: 0, isNew: true });
      expect((await request(t.server).get('/me').set('Cookie', jar.header())).body).toMatchObject({ userId: null });
    } finally {
      client.close();
    }
  });
});

describe.each(kinds.flatMap((kind) => transports.map((transport) => ({ kind, transport }))))('SessionService.load(client) in handleConnection, with no handler that asks for a session: $transport on $kind', ({ kind, transport }) => {
  let t: GatewayApp;
  beforeAll(async () => {
    t = await createGatewayApp(kind, transport, greetingModule({}));
  });
  afterAll(() => t?.close());

  it('reads the session of the user signed in over HTTP', async () => {
    const jar = new CookieJar();
    jar.take(await request(t.server).post('/login?user=41'));
    const client = await connect(transport, t.url, jar.header());
    try {
      expect(await client.event('greeting')).toEqual({ userId: 41 });
      expect(await client.request('ping')).toEqual({ pong: true });
    } finally {
      client.close();
    }
  });
});

describe('a ws gateway on a port of its own', () => {
  let t: GatewayApp;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    t = await createGatewayApp('express', 'ws', greetingModule({}, port));
  });
  afterAll(() => t?.close());

  it("SessionService.load(client) throws a SessionError that names the cause: the upgrade never reached the app's HTTP server", async () => {
    const jar = new CookieJar();
    jar.take(await request(t.server).post('/login?user=42'));
    const client = await connect('ws', `127.0.0.1:${port}`, jar.header());
    try {
      expect(await client.event('greeting')).toEqual({
        error: 'SessionError',
        message: expect.stringMatching(/upgrade request of this ws WebSocket did not reach the app's HTTP server.*a port of its own \(@WebSocketGateway\(port\)\)/),
      });
    } finally {
      client.close();
    }
  });
});

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
