import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { Controller, Injectable, Module, Post, type INestApplication, type INestApplicationContext } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { Test } from '@nestjs/testing';
import { SubscribeMessage, WebSocketGateway, WebSocketServer, type OnGatewayConnection } from '@nestjs/websockets';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import type { Server, Socket } from 'socket.io';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session, SessionModule, SessionService } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { redisUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';
import { connect, type SocketTestClient } from './gateways.fixture.js';

// Two instances of one app behind one Redis (sessions in RedisStore, socket.io on its Redis
// adapter): a logout on one instance ends the sockets of that session held by the other, as the
// README's "Several instances" recipe does it.

const REDIS_URL = redisUrl();
const RUN = `e2e_gw_instances_${randomBytes(4).toString('hex')}`;

/** The room of a session's sockets: named after a hash of its id, so no id travels through Redis' pub/sub. */
function sessionRoom(id: string): string {
  return `session:${createHash('sha256').update(id).digest('base64url')}`;
}

@WebSocketGateway()
@Injectable()
class LiveGateway implements OnGatewayConnection {
  @WebSocketServer() server!: Server;

  constructor(private readonly sessions: SessionService) {}

  async handleConnection(client: Socket) {
    const session = await this.sessions.load(client);
    if (!session.isNew) await client.join(sessionRoom(session.id));
  }

  @SubscribeMessage('whoami')
  whoami(@Session() session: Session) {
    return { userId: session.get('userId') ?? null }; // an object: Nest sends no ack for null
  }

  /** Ends, on every instance, the sockets of a session that ended. */
  endSockets(id: string) {
    this.server.in(sessionRoom(id)).disconnectSockets(true);
  }
}

@Controller()
class AuthController {
  constructor(private readonly live: LiveGateway) {}

  @Post('login')
  async login(@Session() session: Session) {
    await session.regenerate();
    session.set('userId', 1);
    return { ok: true };
  }

  @Post('logout')
  async logout(@Session() session: Session) {
    const id = session.id;
    await session.destroy();
    this.live.endSockets(id);
    return { ok: true };
  }

  /** A logout without the recipe's room: what the library does by itself. */
  @Post('logout-here')
  async logoutHere(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }
}

/** socket.io on its Redis adapter: broadcasts (disconnectSockets included) reach every instance. */
class RedisIoAdapter extends IoAdapter {
  readonly clients = [new Redis(REDIS_URL), new Redis(REDIS_URL)];

  constructor(app: INestApplicationContext) {
    super(app);
  }

  // Typed from IoAdapter itself: @nestjs/platform-socket.io brings its own copy of socket.io.
  override createIOServer(port: number, options?: Parameters<IoAdapter['createIOServer']>[1]): ReturnType<IoAdapter['createIOServer']> {
    const server = super.createIOServer(port, options);
    server.adapter(createAdapter(this.clients[0], this.clients[1], { key: `${RUN}:io` }));
    return server;
  }
}

interface Instance {
  app: INestApplication;
  url: string;
  adapter: RedisIoAdapter;
}

async function instance(client: Redis): Promise<Instance> {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, store: new RedisStore({ client, prefix: `${RUN}:sess:` }) })],
    controllers: [AuthController],
    providers: [LiveGateway],
  })
  class InstanceModule {}
  const ref = await Test.createTestingModule({ imports: [InstanceModule] }).compile();
  const app = ref.createNestApplication(new ExpressAdapter(), { logger: false });
  const adapter = new RedisIoAdapter(app);
  app.useWebSocketAdapter(adapter);
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as HttpServer).address() as AddressInfo;
  return { app, url: `127.0.0.1:${port}`, adapter };
}

/** Waits until `condition` holds, or fails after two seconds. */
async function until(condition: () => boolean, what: string) {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('gateways on two instances (RedisStore, socket.io Redis adapter)', () => {
  let redis: Redis;
  let a: Instance;
  let b: Instance;
  const sockets: SocketTestClient[] = [];

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    a = await instance(redis);
    b = await instance(redis);
  });

  afterAll(async () => {
    for (const socket of sockets) socket.close();
    for (const each of [a, b]) {
      if (each === undefined) continue;
      await each.app.close();
      for (const client of each.adapter.clients) client.disconnect();
    }
    const keys = await redis.keys(`${RUN}:*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  async function socketOn(target: Instance, jar: CookieJar) {
    const socket = await connect('socket.io', target.url, jar.header());
    sockets.push(socket);
    return socket;
  }

  it("a logout ends the session's sockets on its own instance by itself; the room on the Redis adapter ends those on the other", async () => {
    const jar = new CookieJar();
    jar.take(await request(a.app.getHttpServer()).post('/login'));
    const onB = await socketOn(b, jar);
    const onA = await socketOn(a, jar);
    expect(await onB.request('whoami')).toEqual({ userId: 1 });
    expect(await onA.request('whoami')).toEqual({ userId: 1 });

    // The library's part, with no room to help: the socket on the instance of the logout is ended,
    // the one on the other instance stays open and finds the session gone.
    jar.take(await request(a.app.getHttpServer()).post('/logout-here').set('Cookie', jar.header()));
    await until(() => !onA.isOpen(), 'the socket on the instance of the logout to be ended');
    expect(onB.isOpen()).toBe(true);
    expect(await onB.request('whoami')).toEqual({ userId: null });

    // The recipe's part: a logout on A ends, through the Redis adapter, the session's socket held by B
    // (which the library on A cannot reach), and only that one.
    const other = new CookieJar();
    other.take(await request(b.app.getHttpServer()).post('/login'));
    const otherOnB = await socketOn(b, other);
    expect(await otherOnB.request('whoami')).toEqual({ userId: 1 });
    other.take(await request(a.app.getHttpServer()).post('/logout').set('Cookie', other.header()));
    await otherOnB.closed;
    expect(onB.isOpen()).toBe(true);
  });

  it('without the room, a socket on the other instance sees the session gone at its next message', async () => {
    const jar = new CookieJar();
    jar.take(await request(a.app.getHttpServer()).post('/login'));
    const onB = await socketOn(b, jar);
    expect(await onB.request('whoami')).toEqual({ userId: 1 });
    // Ended by other means than the recipe's logout: the session destroyed in the store alone.
    await (a.app.get(SessionService).store() as SessionStore).destroy((jar.get('sid') ?? '').split('.')[0]);
    expect(onB.isOpen()).toBe(true);
    expect(await onB.request('whoami')).toEqual({ userId: null }); // read fresh from the store at each message
  });
});
