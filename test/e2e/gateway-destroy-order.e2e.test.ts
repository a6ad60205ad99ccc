import { Module } from '@nestjs/common';
import { SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, SessionModule } from '../../src/index.js';
import { ControlledStore } from '../support/controlled-store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { SECRET } from './app.fixture.js';
import { AuthController, connect, createGatewayApp, type GatewayApp, type Transport } from './gateways.fixture.js';

// A destroy() over a socket goes through the session's queue: it reaches the store after a save()
// of the same message asked for before it, even when that save's write reaches the store late.

@WebSocketGateway()
class LogoutGateway {
  @SubscribeMessage('saveThenLogout')
  async saveThenLogout(@Session() session: Session) {
    session.set('note', 'before the logout');
    void session.save();
    await session.destroy();
    return { ok: true };
  }
}

describe.each(['socket.io', 'ws'] as Transport[])('a logout over a %s socket', (transport) => {
  let t: GatewayApp;
  let store: ControlledStore;

  beforeAll(async () => {
    store = new ControlledStore();
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [AuthController], providers: [LogoutGateway] })
    class LogoutModule {}
    t = await createGatewayApp('express', transport, LogoutModule);
  });
  afterAll(() => t?.close());

  it('reaches the store after the save() asked for before it', async () => {
    const jar = new CookieJar();
    jar.take(await request(t.server).post('/login?user=5'));
    const client = await connect(transport, t.url, jar.header());
    try {
      store.reset();
      const release = store.holdNextCall('patch'); // the save's write reaches the store late
      const answer = client.request('saveThenLogout');
      await new Promise((resolve) => setTimeout(resolve, 100));
      release();
      expect(await answer).toEqual({ ok: true });
      for (let i = 0; i < 100 && !(store.calls.includes('patch') && store.calls.includes('destroy')); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(store.calls.filter((call) => call === 'patch' || call === 'destroy')).toEqual(['patch', 'destroy']);
      expect((await request(t.server).get('/me').set('Cookie', jar.header())).body).toMatchObject({ userId: null, note: null });
    } finally {
      client.close();
    }
  });
});
