import { Injectable, Module, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { ConnectedSocket, MessageBody, SubscribeMessage, WebSocketGateway, WsException } from '@nestjs/websockets';
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Session, SessionModule, SessionService, UseSession } from '../../src/index.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { CookieJar } from '../support/cookie-jar.js';
import { ControlledStore } from '../support/controlled-store.js';
import { SECRET } from './app.fixture.js';
import { AuthController, connect, createGatewayApp, type GatewayApp, type SocketTestClient, type Transport } from './gateways.fixture.js';

// What a message's sessions do around its handler: work the handler leaves behind, a handler that
// throws, a client that leaves mid-handler, a failed destroy().

/** Counts the attempts in the session, then refuses: the count must survive the refusal. */
@Injectable()
class CountingGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    session.set('attempts', ((session.get('attempts') as number | undefined) ?? 0) + 1);
    throw new WsException('refused');
  }
}

/** What work a handler left scheduled saw, once it ran. */
const seenLater: { value?: unknown } = {};

@WebSocketGateway()
class MessagesGateway {
  constructor(private readonly sessions: SessionService) {}

  /** Starts work that reads the socket's session after the message is over, as a heartbeat would. */
  @SubscribeMessage('watch')
  @UseSession()
  watch(@ConnectedSocket() client: object) {
    setTimeout(() => {
      void this.sessions.load(client).then((session) => {
        seenLater.value = { loaded: session.get('userId') ?? null, current: this.sessions.current()?.get('userId') ?? null };
      });
    }, 50);
    return { userId: this.sessions.current()?.get('userId') ?? null };
  }

  @SubscribeMessage('failAfterChange')
  failAfterChange(@Session() session: Session) {
    session.set('failed', 'yes');
    throw new WsException('refused after a change');
  }

  /** Sets `early`, and leaves work scheduled that sets `mid` 20 ms later and `late` 120 ms later. */
  @SubscribeMessage('lateSet')
  lateSet(@Session() session: Session) {
    session.set('early', 'e');
    setTimeout(() => session.set('mid', 'm'), 20);
    setTimeout(() => session.set('late', 'l'), 120);
    return { ok: true };
  }

  /** Answers after `ms`, having set `slow` on the way. */
  @SubscribeMessage('slowSet')
  async slowSet(@Session() session: Session, @MessageBody() value: string) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    session.set('slow', value);
    return { ok: true };
  }

  @SubscribeMessage('setNote')
  setNote(@Session() session: Session, @MessageBody() value: string) {
    session.set('note', value);
    return { ok: true };
  }

  @SubscribeMessage('seedCart')
  seedCart(@Session() session: Session) {
    session.set('cart', { items: [] });
    return { ok: true };
  }

  /** Reads the cart, then, 100 ms later, adds to it in place (no set()). */
  @SubscribeMessage('slowPush')
  async slowPush(@Session() session: Session, @MessageBody() value: string) {
    const cart = session.get('cart') as { items: string[] };
    await new Promise((resolve) => setTimeout(resolve, 100));
    cart.items.push(value);
    return { ok: true };
  }

  /** Two saves of one session: an unawaited save() of 'first', then the handler's save of 'second'. */
  @SubscribeMessage('saveTwice')
  saveTwice(@Session() session: Session) {
    session.set('order', 'first');
    void session.save();
    session.set('order', 'second');
    return { ok: true };
  }

  /** load(client) in a handler that asks for no session by a decorator. */
  @SubscribeMessage('plainSet')
  async plainSet(@ConnectedSocket() client: object, @MessageBody() value: string) {
    const session = await this.sessions.load(client);
    session.set('plain', value);
    return { ok: true };
  }

  @SubscribeMessage('counted')
  @UseGuards(CountingGuard)
  counted() {
    return { ok: true };
  }

  @SubscribeMessage('logout')
  async logout(@Session() session: Session) {
    try {
      await session.destroy();
      return { ok: true };
    } catch (error) {
      return { error: (error as Error).name };
    }
  }

  @SubscribeMessage('whoami')
  whoami(@Session() session: Session) {
    return { userId: session.get('userId') ?? null };
  }
}

/** Waits until `condition` holds. */
/** @nestjs/websockets 11's exception filter sends nothing to `ws` clients (it calls `emit`, which a WebSocket only fires locally); 12's sends them. */
const NEST_MAJOR = Number((JSON.parse(readFileSync(new URL('../../node_modules/@nestjs/websockets/package.json', import.meta.url), 'utf8')) as { version: string }).version.split('.')[0]);

/**
 * Sends `event`, whose handler fails, and waits for the failure: Nest's `exception` event matching
 * `payload`, or where Nest sends no exception to this client (ws on NestJS 11), the store's patch of
 * what the handler changed.
 */
async function expectFailure(client: SocketTestClient, transport: Transport, store: ControlledStore, event: string, payload: Record<string, unknown>) {
  if (transport === 'ws' && NEST_MAJOR < 12) {
    store.reset();
    void client.request(event).catch(() => undefined); // no answer comes
    await until(() => store.calls.includes('patch'), 'the change to be saved');
    return;
  }
  const exception = client.nextException();
  void client.request(event).catch(() => undefined); // the exception is the answer
  expect(await exception).toMatchObject(payload);
}

async function until(condition: () => boolean, what: string) {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(['socket.io', 'ws'] as Transport[])('gateway messages on %s', (transport) => {
  let t: GatewayApp;
  let store: ControlledStore;
  const open: SocketTestClient[] = [];

  beforeAll(async () => {
    store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [AuthController], providers: [MessagesGateway, CountingGuard] })
    class MessagesModule {}
    t = await createGatewayApp('express', transport, MessagesModule);
  });
  afterAll(() => t?.close());
  beforeEach(() => () => {
    for (const client of open.splice(0)) client.close();
  });

  async function login(user: number) {
    const jar = new CookieJar();
    jar.take(await request(t.server).post(`/login?user=${user}`));
    return jar;
  }

  async function socket(jar: CookieJar) {
    const client = await connect(transport, t.url, jar.header());
    open.push(client);
    return client;
  }

  const value = async (jar: CookieJar, key: string) => ((await request(t.server).get(`/value?key=${key}`).set('Cookie', jar.header())).body as { value: unknown }).value;
  const sessionId = (jar: CookieJar) => (jar.get('sid') ?? '').split('.')[0];

  it("work a @UseSession() handler left scheduled reads the store anew once the message is over: current() is gone, load(client) sees the session's end", async () => {
    const jar = await login(77);
    const client = await socket(jar);
    delete seenLater.value;
    expect(await client.request('watch')).toEqual({ userId: 77 });
    await store.destroy(sessionId(jar)); // ended behind the socket's back, as another instance would
    await until(() => seenLater.value !== undefined, 'the scheduled work to run');
    expect(seenLater.value).toEqual({ loaded: null, current: null });
  });

  it('what a handler changed before it threw is saved, and the client gets the error', async () => {
    const jar = await login(78);
    const client = await socket(jar);
    await expectFailure(client, transport, store, 'failAfterChange', { status: 'error', message: 'refused after a change' });
    expect(await value(jar, 'failed')).toBe('yes');
  });

  it('a destroy() over a socket that the store fails keeps the session, and the socket is still ended by a later logout', async () => {
    const jar = await login(79);
    const id = sessionId(jar);
    const client = await socket(jar);
    const other = await socket(jar);
    expect(await other.request('whoami')).toEqual({ userId: 79 });
    store.failNext('destroy');
    expect(await client.request('logout')).toEqual({ error: 'SessionStoreError' });
    expect(t.app.get(SessionEngine).connections.count('default', id)).toBe(2); // before any other message hangs it on again
    expect(await client.request('whoami')).toEqual({ userId: 79 });
    await request(t.server).post('/logout').set('Cookie', jar.header());
    await Promise.all([client.closed, other.closed]);
  });

  it('what work a handler left scheduled changes after the answer is saved on its own', async () => {
    const jar = await login(90);
    const client = await socket(jar);
    expect(await client.request('lateSet')).toEqual({ ok: true });
    await new Promise((resolve) => setTimeout(resolve, 250)); // the scheduled work has run
    expect({ early: await value(jar, 'early'), mid: await value(jar, 'mid'), late: await value(jar, 'late') }).toEqual({ early: 'e', mid: 'm', late: 'l' });
  });

  it("a change scheduled work makes while the message's last save is in flight is saved", async () => {
    const jar = await login(91);
    const client = await socket(jar);
    store.reset();
    const releaseFirst = store.holdNextAnswer('patch');
    const answer = client.request('lateSet');
    await until(() => store.calls.includes('patch'), 'the save before the answer');
    const releaseLast = store.holdNextAnswer('patch');
    await new Promise((resolve) => setTimeout(resolve, 60)); // 'mid' is set while the handler's saves are pending
    releaseFirst(); // the answer goes out; the last save (of 'mid') starts and is held
    await until(() => store.count('patch') === 2, 'the last save');
    await new Promise((resolve) => setTimeout(resolve, 150)); // 'late' is set while it is in flight
    releaseLast();
    expect(await answer).toEqual({ ok: true });
    await until(() => store.count('patch') === 3, 'the late change to be saved');
    expect({ early: await value(jar, 'early'), mid: await value(jar, 'mid'), late: await value(jar, 'late') }).toEqual({ early: 'e', mid: 'm', late: 'l' });
  });

  it('a handler that finishes after its client left has its change saved', async () => {
    const jar = await login(80);
    const client = await socket(jar);
    store.reset();
    void client.request('slowSet', 'kept').catch(() => undefined); // the client leaves before the answer
    await until(() => store.calls.includes('get'), 'the message to read its session');
    await new Promise((resolve) => setTimeout(resolve, 40)); // the handler has started (it takes 100 ms)
    client.close();
    await until(() => store.calls.includes('patch'), 'the change to be saved');
    expect(await value(jar, 'slow')).toBe('kept');
  });

  it('a sign-in (regenerate()) over HTTP ends the sockets of the old id once its response, with the new cookie, has gone', async () => {
    const jar = await login(85);
    const client = await socket(jar);
    expect(await client.request('whoami')).toEqual({ userId: 85 }); // the socket hangs on the session
    let ended = false;
    void client.closed.then(() => (ended = true));
    const release = store.holdNextAnswer('set'); // the new id's write: the response waits for it
    const signIn = request(t.server).post('/login?user=86').set('Cookie', jar.header()).then((res) => res);
    await until(() => store.calls.includes('destroy'), 'the old id to be destroyed');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ended).toBe(false); // a client reconnecting now would not have the new cookie yet
    release();
    jar.take(await signIn);
    await client.closed;
    const next = await socket(jar);
    expect(await next.request('whoami')).toEqual({ userId: 86 });
  });

  it("a message's answer goes out only once what its handler changed is written", async () => {
    const jar = await login(84);
    const client = await socket(jar);
    store.reset();
    const release = store.holdNextAnswer('patch');
    let answered = false;
    const answer = client.request('setNote', 'saved first').then((value) => {
      answered = true;
      return value;
    });
    await until(() => store.calls.includes('patch'), 'the save of the change');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(answered).toBe(false); // the write has not been confirmed: no answer yet
    release();
    expect(await answer).toEqual({ ok: true });
    expect(await value(jar, 'note')).toBe('saved first');
  });

  it('a handler that changes a value in place after its client left has the change saved', async () => {
    const jar = await login(82);
    const client = await socket(jar);
    expect(await client.request('seedCart')).toEqual({ ok: true });
    store.reset();
    void client.request('slowPush', 'kept').catch(() => undefined); // the client leaves before the answer
    await until(() => store.calls.includes('get'), 'the message to read its session');
    await new Promise((resolve) => setTimeout(resolve, 40)); // the handler has started (it takes 100 ms)
    client.close();
    await until(() => store.calls.includes('patch'), 'the in-place change to be saved');
    expect(await value(jar, 'cart')).toEqual({ items: ['kept'] });
  });

  it("a session's writes over a socket land in the order they were made, on a store that would reorder them", async () => {
    const jar = await login(83);
    const client = await socket(jar);
    store.reset();
    const releaseFirst = store.holdNextCall('patch'); // the unawaited save()'s write reaches the store late
    const answer = client.request('saveTwice');
    await new Promise((resolve) => setTimeout(resolve, 100)); // the handler's own save is due meanwhile
    releaseFirst();
    expect(await answer).toEqual({ ok: true });
    await until(() => store.count('patch') === 2, 'both writes');
    expect(await value(jar, 'order')).toBe('second');
  });

  it('a change made where no handler saves is saved on its own: load(client) in a handler that asks for no session, a guard that refuses', async () => {
    const jar = await login(81);
    const client = await socket(jar);
    store.reset();
    expect(await client.request('plainSet', 'x')).toEqual({ ok: true });
    await until(() => store.calls.includes('patch'), 'the change to be saved');
    expect(await value(jar, 'plain')).toBe('x');

    store.reset();
    await expectFailure(client, transport, store, 'counted', { message: 'refused' });
    await until(() => store.calls.includes('patch'), 'the count to be saved');
    expect(await value(jar, 'attempts')).toBe(1);
  });
});
