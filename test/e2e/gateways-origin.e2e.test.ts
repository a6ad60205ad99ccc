import type { IncomingMessage } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../support/cookie-jar.js';
import { connect, createGatewayApp, greetingModule, type GatewayApp, type Transport } from './gateways.fixture.js';

// The README's recipe against sockets opened from a sibling subdomain (the same site, so the
// session cookie rides along; another origin): the handshake's Origin is checked before any
// socket opens, with socket.io's allowRequest or ws' verifyClient.

const ORIGINS = ['https://app.example.com'];
const fromOurPages = (origin: string | undefined) => origin === undefined || ORIGINS.includes(origin);

const recipes: Record<Transport, Record<string, unknown>> = {
  'socket.io': {
    cors: { origin: ORIGINS, credentials: true },
    allowRequest: (req: IncomingMessage, callback: (error: string | null, allowed: boolean) => void) => callback(null, fromOurPages(req.headers.origin)),
  },
  ws: { verifyClient: ({ origin }: { origin?: string }) => fromOurPages(origin) },
};

describe.each(['socket.io', 'ws'] as Transport[])('the Origin check of the README on %s', (transport) => {
  let t: GatewayApp;
  const jar = new CookieJar();
  beforeAll(async () => {
    t = await createGatewayApp('express', transport, greetingModule({}, undefined, recipes[transport]));
    jar.take(await request(t.server).post('/login?user=51'));
  });
  afterAll(() => t?.close());

  it("refuses a handshake from a sibling subdomain's page, which carries the session cookie", async () => {
    await expect(connect(transport, t.url, jar.header(), { origin: 'https://blog.example.com' })).rejects.toThrow();
  });

  it('lets pages of the app through, and clients that are no browser page', async () => {
    for (const origin of ['https://app.example.com', undefined]) {
      const client = await connect(transport, t.url, jar.header(), { origin });
      try {
        expect(await client.event('greeting')).toEqual({ userId: 51 });
      } finally {
        client.close();
      }
    }
  });

  it.runIf(transport === 'socket.io')('checks the long-polling handshake too', async () => {
    await expect(connect(transport, t.url, jar.header(), { origin: 'https://blog.example.com', polling: true })).rejects.toThrow();
    const client = await connect(transport, t.url, jar.header(), { origin: 'https://app.example.com', polling: true });
    try {
      expect(await client.event('greeting')).toEqual({ userId: 51 });
    } finally {
      client.close();
    }
  });
});
