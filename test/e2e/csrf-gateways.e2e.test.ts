import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CsrfGuard, SessionModule } from '../../src/index.js';
import { CookieJar } from '../support/cookie-jar.js';
import { SECRET } from './app.fixture.js';
import { AuthController, connect, createGatewayApp, SessionGateway, SignedInReader, SignedInSocketGuard, type GatewayApp, type Kind, type Transport } from './gateways.fixture.js';

/** The gateways app with CsrfGuard app-wide: HTTP posts need a token, socket messages are not checked. */
@Module({
  imports: [SessionModule.forRoot({ secret: SECRET })],
  controllers: [AuthController],
  providers: [SessionGateway, SignedInSocketGuard, SignedInReader, { provide: APP_GUARD, useClass: CsrfGuard }],
})
class CsrfGatewayModule {}

const cases = (['express', 'fastify'] as Kind[]).flatMap((kind) => (['socket.io', 'ws'] as Transport[]).map((transport) => ({ kind, transport })));

describe.each(cases)('an app-wide CsrfGuard with $transport gateways on $kind', ({ kind, transport }) => {
  let t: GatewayApp;
  beforeAll(async () => {
    t = await createGatewayApp(kind, transport, CsrfGatewayModule);
  });
  afterAll(() => t?.close());

  it('lets socket messages through (no token can ride on them) while HTTP posts need one', async () => {
    const jar = new CookieJar();
    const refused = await request(t.server).post('/note?text=x');
    expect(refused.status).toBe(403);
    const client = await connect(transport, t.url, jar.header());
    try {
      expect(await client.request('whoami')).toEqual({ userId: null, note: null, visits: 0, isNew: true });
    } finally {
      client.close();
    }
  });
});
