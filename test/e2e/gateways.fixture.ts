// The app of gateways.e2e.test.ts: HTTP routes that sign in and out, and one gateway whose message
// handlers use the session, served over socket.io or ws, on Express or Fastify.
import { Controller, Get, Injectable, Module, Post, Query, UseGuards, type CanActivate, type ExecutionContext, type INestApplication, type Type } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { ConnectedSocket, MessageBody, SubscribeMessage, WebSocketGateway, WsException } from '@nestjs/websockets';
import { io, type Socket as IoClient } from 'socket.io-client';
import { WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Flash, Session, SessionModule, SessionService, UseSession, type SessionModuleOptions } from '../../src/index.js';
import { SECRET } from './app.fixture.js';

@Controller()
export class AuthController {
  @Post('login')
  async login(@Session() session: Session, @Flash() flash: Flash, @Query('user') user: string) {
    await session.regenerate();
    session.set('userId', Number(user));
    flash.add('info', `Welcome ${user}`);
    return { ok: true };
  }

  /** Signs in tying the session to the user (setUser), as "sign out everywhere" (userVersion) needs. */
  @Post('login-user')
  async loginUser(@Session() session: Session, @Query('user') user: string) {
    await session.regenerate();
    session.setUser(user);
    session.set('userId', Number(user));
    return { ok: true };
  }

  @Post('logout')
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }

  @Get('me')
  me(@Session() session: Session) {
    return { userId: session.get('userId') ?? null, note: session.get('note') ?? null, visits: session.get('visits') ?? 0, current: session.get('current') ?? null };
  }

  @Post('note')
  setNote(@Session() session: Session, @Query('text') text: string) {
    session.set('note', text);
    return { ok: true };
  }

  @Get('plain')
  plain() {
    return { ok: true };
  }
}

/** Lets signed-in sockets through, reading the session with SessionService.load(context). */
@Injectable()
export class SignedInSocketGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    if (session.get('userId') === undefined) throw new WsException('sign in first');
    session.set('guarded', ((session.get('guarded') as number | undefined) ?? 0) + 1);
    return true;
  }
}

/** Lets signed-in sockets through, reading the session only. */
@Injectable()
export class SignedInReader implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    if (session.get('userId') === undefined) throw new WsException('sign in first');
    return true;
  }
}

/** What a handler that tried a change it may not make answers: the error's class and message. */
function refusal(error: unknown) {
  return { error: (error as Error).name, message: (error as Error).message };
}

@WebSocketGateway()
export class SessionGateway {
  constructor(private readonly sessions: SessionService) {}

  @SubscribeMessage('whoami')
  whoami(@Session() session: Session) {
    return { userId: session.get('userId') ?? null, note: session.get('note') ?? null, visits: session.get('visits') ?? 0, isNew: session.isNew };
  }

  @SubscribeMessage('visit')
  visit(@Session() session: Session) {
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return visits;
  }

  @SubscribeMessage('note')
  note(@Session() session: Session, @MessageBody() text: string) {
    try {
      session.set('note', text);
      return { ok: true };
    } catch (error) {
      return refusal(error);
    }
  }

  @SubscribeMessage('flash')
  flash(@Flash() flash: Flash) {
    try {
      return { info: flash.get('info') };
    } catch (error) {
      return refusal(error);
    }
  }

  @SubscribeMessage('regenerate')
  async regenerate(@Session() session: Session) {
    try {
      await session.regenerate();
      return { ok: true };
    } catch (error) {
      return refusal(error);
    }
  }

  @SubscribeMessage('logout')
  async logout(@Session() session: Session) {
    await session.destroy();
    return { ok: true, isNew: session.isNew };
  }

  @SubscribeMessage('guarded')
  @UseGuards(SignedInSocketGuard)
  guarded(@Session() session: Session) {
    return session.get('guarded') as number;
  }

  /** SessionService.current() from a handler marked @UseSession(), as a service it calls would. */
  @SubscribeMessage('current')
  @UseSession()
  current() {
    const session = this.sessions.current();
    session?.set('current', true);
    return session?.get('userId') ?? null;
  }

  /** A guard reads the session of a handler that asks for none: read-only. */
  @SubscribeMessage('guardOnly')
  @UseGuards(SignedInReader)
  guardOnly() {
    return 'let through';
  }

  @SubscribeMessage('untouched')
  untouched() {
    return 'pong';
  }

  /** SessionService.load() given the client socket itself (what handleConnection would do). */
  @SubscribeMessage('byClient')
  async byClient(@ConnectedSocket() client: object) {
    const session = await this.sessions.load(client);
    return session.get('userId') ?? null;
  }
}

export type Transport = 'socket.io' | 'ws';
export type Kind = 'express' | 'fastify';

export interface GatewayApp {
  app: INestApplication;
  server: Server;
  url: string;
  close(): Promise<void>;
}

export function gatewayModule(options: SessionModuleOptions): Type<unknown> {
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, ...options })],
    controllers: [AuthController],
    providers: [SessionGateway, SignedInSocketGuard, SignedInReader],
  })
  class GatewayTestModule {}
  return GatewayTestModule;
}

/** The app listening on a port the OS picks, with the transport's WebSocket adapter. */
export async function createGatewayApp(kind: Kind, transport: Transport, module: Type<unknown>): Promise<GatewayApp> {
  const ref = await Test.createTestingModule({ imports: [module] }).compile();
  const app = ref.createNestApplication(kind === 'express' ? new ExpressAdapter() : new FastifyAdapter(), { logger: process.env.GW_DEBUG ? ['error', 'warn'] : false });
  app.useWebSocketAdapter(transport === 'ws' ? new WsAdapter(app) : new IoAdapter(app));
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as Server;
  const { port } = server.address() as AddressInfo;
  return { app, server, url: `127.0.0.1:${port}`, close: () => app.close() };
}

/** A test client of either transport: `request` sends one message and waits for its answer. */
export interface SocketTestClient {
  request(event: string, data?: unknown): Promise<unknown>;
  /** The next `exception` event Nest's gateway filter sends. */
  nextException(): Promise<unknown>;
  /** Resolves when the server has ended the connection. */
  closed: Promise<void>;
  isOpen(): boolean;
  close(): void;
}

/** `polling`: socket.io's handshake over HTTP long-polling (its default start) rather than a WebSocket. */
export async function connect(transport: Transport, url: string, cookie: string, options: { polling?: boolean } = {}): Promise<SocketTestClient> {
  const headers: Record<string, string> = cookie === '' ? {} : { Cookie: cookie };
  if (transport === 'socket.io') {
    const transports: ('polling' | 'websocket')[] = options.polling === true ? ['polling'] : ['websocket'];
    const socket: IoClient = io(`http://${url}`, { transports, extraHeaders: headers, reconnection: false, forceNew: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const closed = new Promise<void>((resolve) => socket.once('disconnect', () => resolve()));
    return {
      request: (event, data) => socket.timeout(5000).emitWithAck(event, data),
      nextException: () => new Promise((resolve) => socket.once('exception', resolve)),
      closed,
      isOpen: () => socket.connected,
      close: () => void socket.close(),
    };
  }
  const socket = new WebSocket(`ws://${url}/`, { headers });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const nextMessage = () =>
    new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
      socket.once('message', (raw: Buffer) => {
        clearTimeout(timer);
        resolve(JSON.parse(raw.toString()));
      });
    });
  return {
    request: async (event, data) => {
      const answer = nextMessage();
      socket.send(JSON.stringify({ event, data }));
      return answer;
    },
    nextException: async () => {
      const message = (await nextMessage()) as { event?: string; data?: unknown };
      if (message.event !== 'exception') throw new Error(`expected an exception, got ${JSON.stringify(message)}`);
      return message.data;
    },
    closed,
    isOpen: () => socket.readyState === WebSocket.OPEN,
    close: () => socket.close(),
  };
}
