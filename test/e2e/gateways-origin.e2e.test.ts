import type { IncomingMessage } from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CookieJar } from '../support/cookie-jar.js';
import { WebSocket } from 'ws';
import { connect, createGatewayApp, greetingModule, type GatewayApp, type Transport } from './gateways.fixture.js';

// The README's recipe against sockets opened from a sibling subdomain (the same site, so the
// session cookie rides along; another origin): the handshake's Origin is checked before any
// socket opens, with socket.io's allowRequest or ws' verifyClient.

const ORIGINS = ['https://app.example.com'];
const fromOurPages = (req: IncomingMessage) => {
  const origin = req.headers.origin;
  if (origin !== undefined) return ORIGINS.includes(origin);
  const site = req.headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin';
};
const isJsonp = (req: IncomingMessage) => new URL(req.url ?? '/', 'http://localhost').searchParams.has('j');

const recipes: Record<Transport, Record<string, unknown>> = {
  'socket.io': {
    cors: { origin: ORIGINS, credentials: true },
    allowRequest: (req: IncomingMessage, callback: (error: string | null, allowed: boolean) => void) => callback(null, !isJsonp(req) && fromOurPages(req)),
  },
  ws: { verifyClient: ({ req }: { req: IncomingMessage }) => fromOurPages(req) },
};

/**
 * What a `<script src="…/socket.io/?EIO=4&transport=polling&j=0">` on a sibling subdomain's page
 * starts (the cookie sent, no Origin), then what its author drives from a server of its own with
 * the connection id the script handed over: the greeting the socket got, or the handshake's status.
 */
async function jsonpGreeting(server: GatewayApp['server'], cookie: string, headers: Record<string, string> = {}): Promise<string | number> {
  const handshake = await request(server).get('/socket.io/?EIO=4&transport=polling&j=0').set('Cookie', cookie).set(headers);
  if (handshake.status !== 200) return handshake.status;
  const sid = /\\"sid\\":\\"([^\\]+)\\"/.exec(handshake.text)![1];
  const path = `/socket.io/?EIO=4&transport=polling&sid=${sid}&j=0`;
  await request(server).post(path).set('Origin', 'https://evil.example').type('form').send('d=40');
  let text = '';
  for (let i = 0; i < 5 && !text.includes('greeting'); i++) text += (await request(server).get(path).set('Origin', 'https://evil.example')).text;
  return /greeting\\",(\{[^}]*\})/.exec(text)?.[1].replace(/\\"/g, '"') ?? text;
}

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

  it.runIf(transport === 'socket.io')("refuses a JSONP handshake (a sibling's <script>: no Origin, the cookie sent), and one whose Sec-Fetch-Site is not same-origin", async () => {
    expect(await jsonpGreeting(t.server, jar.header())).toBe(403);
    const polling = '/socket.io/?EIO=4&transport=polling';
    expect((await request(t.server).get(polling).set('Cookie', jar.header()).set('Sec-Fetch-Site', 'same-site')).status).toBe(403);
    expect((await request(t.server).get(polling).set('Cookie', jar.header()).set('Sec-Fetch-Site', 'same-origin')).status).toBe(200);
  });

  it.runIf(transport === 'ws')('refuses an upgrade without Origin whose Sec-Fetch-Site is not same-origin', async () => {
    const refused = new Promise<unknown>((resolve) => {
      const socket = new WebSocket(`ws://${t.url}/`, { headers: { Cookie: jar.header(), 'Sec-Fetch-Site': 'same-site' } });
      socket.on('unexpected-response', (_request, response) => resolve(response.statusCode));
      socket.on('open', () => resolve('open'));
    });
    expect(await refused).toBe(401);
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

describe('a socket.io handshake over JSONP polling, without any Origin check', () => {
  let t: GatewayApp;
  const jar = new CookieJar();
  beforeAll(async () => {
    t = await createGatewayApp('express', 'socket.io', greetingModule({}));
    jar.take(await request(t.server).post('/login?user=51'));
  });
  afterAll(() => t?.close());

  it("gets no session: the page whose <script> made it could hand the socket to anyone", async () => {
    expect(await jsonpGreeting(t.server, jar.header())).toBe('{"userId":null}');
  });
});
