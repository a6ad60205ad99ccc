// The apps of the gateways tests: HTTP routes that sign in and out, and one gateway whose message
// handlers use the session (or one that reads it in handleConnection alone), served over socket.io
// or ws, on Express or Fastify.
import { Controller, Get, Injectable, Module, Post, Query, UseGuards, type CanActivate, type ExecutionContext, type INestApplication, type Type } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { ConnectedSocket, MessageBody, SubscribeMessage, WebSocketGateway, WsException, type OnGatewayConnection } from '@nestjs/websockets';
import type { Socket as IoServerSocket } from 'socket.io';
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

  @Get('value')
  value(@Session() session: Session, @Query('key') key: string) {
    return { value: session.get(key) ?? null };
  }
}

/** A gate a test opens: `enter()` tells the test it was reached, then waits until the test opens it. */
class Gate {
  entered!: () => void;
  open!: () => void;
  readonly reached = new Promise<void>((resolve) => (this.entered = resolve));
  readonly opened = new Promise<void>((resolve) => (this.open = resolve));
}

/** Where handlers and guards wait, by a key their message carries, until the test lets them go on. */
export const holds = {
  gates: new Map<string, Gate>(),
  gate(key: string): Gate {
    let gate = this.gates.get(key);
    if (gate === undefined) this.gates.set(key, (gate = new Gate()));
    return gate;
  },
  /** In a handler or guard: tells the test, then waits until released. */
  async wait(key: string): Promise<void> {
    const gate = this.gate(key);
    gate.entered();
    await gate.opened;
  },
  /** Resolves once a message waits at `key`. */
  reached(key: string): Promise<void> {
    return this.gate(key).reached;
  },
  release(key: string): void {
    this.gate(key).open();
  },
};

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

/** Marks the session with the message's key, then waits, still in the guard, until the test releases the message. */
@Injectable()
export class HeldGuard implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    const key = context.switchToWs().getData<string>();
    session.set('marked', key);
    await holds.wait(key);
    return true;
  }
}

/** What the last `whoami` handler saw, for a socket that may be ended before its answer arrives. */
export const seen: { whoami?: unknown } = {};

/** What a handler that tried a change it may not make answers: the error's class and message. */
function refusal(error: unknown) {
  return { error: (error as Error).name, message: (error as Error).message };
}

@WebSocketGateway()
export class SessionGateway {
  constructor(private readonly sessions: SessionService) {}

  @SubscribeMessage('whoami')
  whoami(@Session() session: Session) {
    const answer = { userId: session.get('userId') ?? null, note: session.get('note') ?? null, visits: session.get('visits') ?? 0, isNew: session.isNew };
    seen.whoami = answer;
    return answer;
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

  /** Waits with its session loaded until the test releases it; answers with what it read. */
  @SubscribeMessage('hold')
  async hold(@Session() session: Session, @MessageBody() key: string) {
    await holds.wait(key);
    return { held: key, userId: session.get('userId') ?? null, note: session.get('note') ?? null };
  }

  /** As `hold`, but tells what it read in an event named by it (`held:<note>`), for a client that asks for no answer. */
  @SubscribeMessage('holdTell')
  async holdTell(@Session() session: Session, @MessageBody() key: string, @ConnectedSocket() client: { handshake?: unknown; emit(event: string, data: unknown): void; send(text: string): void }) {
    await holds.wait(key);
    const note = (session.get('note') as string | undefined) ?? null;
    const event = `held:${note}`;
    const data = { held: key, userId: session.get('userId') ?? null, note };
    if (client.handshake !== undefined) client.emit(event, data); // socket.io
    else client.send(JSON.stringify({ event, data }));
  }

  /** Its guard marked the session and waited (see HeldGuard). */
  @SubscribeMessage('marked')
  @UseGuards(HeldGuard)
  marked(@Session() session: Session) {
    return { marked: session.get('marked') ?? null, visits: session.get('visits') ?? 0 };
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

/** Reads the session in `handleConnection` only: none of its message handlers asks for one. */
@WebSocketGateway()
export class GreetingGateway implements OnGatewayConnection {
  constructor(private readonly sessions: SessionService) {}

  async handleConnection(client: object) {
    let greeting: unknown;
    try {
      greeting = { userId: (await this.sessions.load(client)).get('userId') ?? null };
    } catch (error) {
      greeting = refusal(error);
    }
    sendEvent(client, 'greeting', greeting);
  }

  @SubscribeMessage('ping')
  ping() {
    return { pong: true };
  }
}

/** Sends `event` to a socket.io socket, or as a `{ event, data }` message to a ws WebSocket. */
function sendEvent(client: object, event: string, data: unknown) {
  if ('handshake' in client) (client as IoServerSocket).emit(event, data);
  else (client as WebSocket).send(JSON.stringify({ event, data }));
}

/**
 * The app with `GreetingGateway` alone; with `port`, the gateway listens on a port of its own; with
 * `gatewayOptions`, they go to `@WebSocketGateway()`.
 */
export function greetingModule(options: SessionModuleOptions, port?: number, gatewayOptions?: Record<string, unknown>): Type<unknown> {
  let gateway: Type<unknown> = GreetingGateway;
  if (port !== undefined || gatewayOptions !== undefined) {
    @WebSocketGateway(port ?? 0, gatewayOptions ?? {})
    class ConfiguredGreetingGateway extends GreetingGateway {}
    gateway = ConfiguredGreetingGateway;
  }
  @Module({
    imports: [SessionModule.forRoot({ secret: SECRET, ...options })],
    controllers: [AuthController],
    providers: [gateway],
  })
  class GreetingTestModule {}
  return GreetingTestModule;
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
    providers: [SessionGateway, SignedInSocketGuard, SignedInReader, HeldGuard],
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

/**
 * A test client of either transport: `request` sends one message and waits for its answer. On `ws`,
 * answers carry nothing of the message they answer: a request waits for the next message that
 * `accepts` (every message, unless given), and each message goes to every request waiting for it.
 */
export interface SocketTestClient {
  request(event: string, data?: unknown, accepts?: (answer: unknown) => boolean): Promise<unknown>;
  /** Sends `event` and asks for no answer (socket.io: no ack). */
  send(event: string, data?: unknown): void;
  /** The next `exception` event Nest's gateway filter sends. */
  nextException(): Promise<unknown>;
  /** The data of the first `event` the server sent since the connection opened (socket.io `emit`, or a ws `{ event, data }` message). */
  event(event: string): Promise<unknown>;
  /** Resolves when the server has ended the connection. */
  closed: Promise<void>;
  isOpen(): boolean;
  close(): void;
}

/** The events a client received since it connected, and who waits for which. */
class Received {
  private readonly seen = new Map<string, unknown>();
  private readonly waiting = new Map<string, ((data: unknown) => void)[]>();

  add(event: string, data: unknown): void {
    if (this.seen.has(event)) return;
    this.seen.set(event, data);
    for (const resolve of this.waiting.get(event) ?? []) resolve(data);
    this.waiting.delete(event);
  }

  first(event: string): Promise<unknown> {
    if (this.seen.has(event)) return Promise.resolve(this.seen.get(event));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no '${event}' within 5 s`)), 5000);
      const waiters = this.waiting.get(event) ?? [];
      waiters.push((data) => {
        clearTimeout(timer);
        resolve(data);
      });
      this.waiting.set(event, waiters);
    });
  }
}

/** `polling`: socket.io's handshake over HTTP long-polling (its default start) rather than a WebSocket; `origin`: the handshake's `Origin`. */
export async function connect(transport: Transport, url: string, cookie: string, options: { polling?: boolean; origin?: string } = {}): Promise<SocketTestClient> {
  const headers: Record<string, string> = cookie === '' ? {} : { Cookie: cookie };
  if (options.origin !== undefined) headers.Origin = options.origin;
  const received = new Received();
  if (transport === 'socket.io') {
    const transports: ('polling' | 'websocket')[] = options.polling === true ? ['polling'] : ['websocket'];
    const socket: IoClient = io(`http://${url}`, { transports, extraHeaders: headers, reconnection: false, forceNew: true });
    socket.onAny((event: string, data: unknown) => received.add(event, data));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const closed = new Promise<void>((resolve) => socket.once('disconnect', () => resolve()));
    return {
      request: (event, data) => socket.timeout(5000).emitWithAck(event, data),
      send: (event, data) => void socket.emit(event, data),
      nextException: () => new Promise((resolve) => socket.once('exception', resolve)),
      event: (event) => received.first(event),
      closed,
      isOpen: () => socket.connected,
      close: () => void socket.close(),
    };
  }
  const socket = new WebSocket(`ws://${url}/`, { headers });
  const waiting = new Set<{ accepts: (answer: unknown) => boolean; answer: (message: unknown) => void }>();
  socket.on('message', (raw: Buffer) => {
    const message: unknown = JSON.parse(raw.toString());
    const { event, data } = (message ?? {}) as { event?: unknown; data?: unknown };
    if (typeof event === 'string') received.add(event, data);
    for (const waiter of [...waiting]) {
      if (waiter.accepts(message)) waiter.answer(message);
    }
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const nextMessage = (accepts: (answer: unknown) => boolean = () => true) =>
    new Promise<unknown>((resolve, reject) => {
      const waiter = {
        accepts,
        answer: (message: unknown) => {
          waiting.delete(waiter);
          clearTimeout(timer);
          resolve(message);
        },
      };
      const timer = setTimeout(() => {
        waiting.delete(waiter);
        reject(new Error('no answer within 5 s'));
      }, 5000);
      waiting.add(waiter);
    });
  return {
    request: async (event, data, accepts) => {
      const answer = nextMessage(accepts);
      socket.send(JSON.stringify({ event, data }));
      return answer;
    },
    send: (event, data) => socket.send(JSON.stringify({ event, data })),
    nextException: async () => {
      const message = (await nextMessage()) as { event?: string; data?: unknown };
      if (message.event !== 'exception') throw new Error(`expected an exception, got ${JSON.stringify(message)}`);
      return message.data;
    },
    event: (event) => received.first(event),
    closed,
    isOpen: () => socket.readyState === WebSocket.OPEN,
    close: () => socket.close(),
  };
}
