import type { ExecutionContext } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { graphqlSessions, registerEngine, sessionsOf } from '../../src/transports/request-context.js';
import { RequestSessions } from '../../src/lifecycle/request-sessions.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { Flash, Session, SessionError, SessionReadOnlyError, SessionService, SessionSocketError } from '../../src/index.js';
import { SubscriptionSessions } from '../../src/subscriptions/subscription-sessions.js';
import { SessionLoader } from '../../src/nest/session.guard.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const engine = new SessionEngine({ secret: SECRET });

/** An Express-like request and response: Express links the request to its response. */
function expressPair() {
  const res = { writeHead() {}, write() {}, end() {}, flushHeaders() {}, headersSent: false };
  const req = { headers: {}, res };
  return { req, res };
}

/** A Fastify-like request and reply: the reply wraps the raw response and leads to the request. */
function fastifyPair() {
  const raw = { writeHead() {}, write() {}, end() {}, flushHeaders() {}, headersSent: false };
  const request = { headers: {}, raw: {} };
  const reply = { raw, request, header() {} };
  return { request, reply };
}

class SomeResolver {
  handler(..._args: unknown[]) {}
}

function contextOf(type: string, args: unknown[]): ExecutionContext {
  return {
    getType: () => type,
    getArgs: () => args,
    getArgByIndex: (index: number) => args[index],
    switchToHttp: () => ({ getRequest: () => args[0], getResponse: () => args[1], getNext: () => args[2] }),
    switchToRpc: () => ({ getData: () => args[0], getContext: () => args[1] }),
    switchToWs: () => ({ getClient: () => args[0], getData: () => args[1], getPattern: () => '' }),
    getClass: () => SomeResolver,
    getHandler: () => SomeResolver.prototype.handler,
  } as unknown as ExecutionContext;
}

/** The factory createParamDecorator registered for the first parameter of `method`. */
function paramFactory(decorator: ParameterDecorator): (data: unknown, context: ExecutionContext) => unknown {
  class Host {
    method(_value: unknown) {}
  }
  decorator(Host.prototype, 'method', 0);
  const params = Reflect.getMetadata('__routeArguments__', Host, 'method') as Record<string, { data: unknown; factory: (data: unknown, context: ExecutionContext) => unknown }>;
  const [param] = Object.values(params);
  return (_data, context) => param.factory(param.data, context);
}

describe('request context: where a request comes from', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a GraphQL resolver on Apollo/Express ({ req }) gets the sessions an HTTP guard on that request gets', () => {
    const { req, res } = expressPair();
    const http = sessionsOf(engine, contextOf('http', [req, res, () => undefined]));
    const graphql = sessionsOf(engine, contextOf('graphql', [{}, {}, { req }, {}]));
    expect(graphql).toBe(http);
    expect((graphql as RequestSessions).graphql).toBe(true);
  });

  it('a GraphQL resolver on Mercurius/Fastify ({ req, reply, app }) uses the Fastify request, as an HTTP guard does', () => {
    const { request, reply } = fastifyPair();
    const graphql = sessionsOf(engine, contextOf('graphql', [{}, {}, { req: request, reply, app: {} }, {}]));
    expect(graphql).toBeInstanceOf(RequestSessions);
    expect(RequestSessions.find(request)).toBe(graphql);
    expect(sessionsOf(engine, contextOf('http', [request, reply]))).toBe(graphql);
  });

  it('a context function of your own that gives { req, res } works too', () => {
    const { res } = expressPair();
    const own = { headers: {} };
    const sessions = sessionsOf(engine, contextOf('graphql', [{}, {}, { req: own, res, user: 1 }, {}]));
    expect(sessions).toBeInstanceOf(RequestSessions);
    expect(RequestSessions.find(own)).toBe(sessions); // kept on the context's own request object
    expect(sessionsOf(engine, contextOf('graphql', [{}, {}, { req: own, res }, {}]))).toBe(sessions);
  });

  it('finds no request in ws and rpc contexts, in a context without req, and in subscription-like contexts without their connection', () => {
    const upgrade = { headers: { cookie: 'sid=x' } };
    // graphql-ws' context without the `ws` socket it is served by.
    expect(sessionsOf(engine, contextOf('graphql', [{}, {}, { req: { connectionParams: {}, extra: { request: upgrade } } }, {}]))).toBeUndefined();
    // Mercurius-like, without its subscription's pubsub or the upgrade's raw request.
    expect(sessionsOf(engine, contextOf('graphql', [{}, {}, { request: upgrade, reply: { request: upgrade }, pubsub: {} }, {}]))).toBeUndefined();
    expect(sessionsOf(engine, contextOf('graphql', [{}, {}, undefined, {}]))).toBeUndefined();
    expect(sessionsOf(engine, contextOf('graphql', [{}, {}, { user: 1 }, {}]))).toBeUndefined();
    expect(sessionsOf(engine, contextOf('ws', [{ id: 'client' }, { data: 1 }]))).toBeUndefined();
    expect(sessionsOf(engine, contextOf('rpc', [{ data: 1 }, {}]))).toBeUndefined();
    expect(RequestSessions.find(upgrade)).toBeUndefined();
  });

  it('without an engine at hand (a field resolver run without guards), uses the one registered on the app instance', () => {
    const { req, res } = expressPair();
    expect(graphqlSessions(undefined, { req })).toBeUndefined();
    const app = {};
    registerEngine(app, engine);
    Object.setPrototypeOf(req, { app }); // Express: req.app through the request prototype
    expect((graphqlSessions(undefined, { req }) as RequestSessions | undefined)?.engine).toBe(engine);
    expect(RequestSessions.find(req)).toBeDefined();
    void res;

    const { request, reply } = fastifyPair();
    (request as { server?: unknown }).server = Object.create(app); // Fastify: an encapsulated child instance
    expect((graphqlSessions(undefined, { req: request, reply }) as RequestSessions | undefined)?.engine).toBe(engine);
  });

  it('the guard lets ws, rpc and socket-only GraphQL contexts through; the parameters say why there is no session in the log (once), the client gets a generic message', async () => {
    const logged = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const loader = new SessionLoader(engine);
    const service = new SessionService(engine);
    const subscription = contextOf('graphql', [{}, {}, { req: { connectionParams: {}, extra: {} } }, {}]);
    const session = paramFactory(Session());
    const flash = paramFactory(Flash());
    for (const [context, reason] of [
      // A gateway's client that is neither a socket.io socket nor a ws WebSocket: no handshake to read.
      [contextOf('ws', [{ id: 'client' }, {}]), /SomeResolver\.handler: no session was loaded for this gateway handler/],
      [contextOf('rpc', [{}, {}]), /a 'rpc' handler has no HTTP request/],
      [subscription, /SomeResolver\.handler: this GraphQL context carries no HTTP request and response \(req, res or reply\) and no subscription connection/],
    ] as const) {
      expect(loader.canActivate(context)).toBe(true);
      logged.mockClear();
      expect(() => session(undefined, context)).toThrow(SessionError);
      expect(() => session(undefined, context)).toThrow('No session is available here; the server log says why.');
      expect(() => flash(undefined, context)).toThrow('No session is available here; the server log says why.');
      const thrown = (() => {
        try {
          session(undefined, context);
        } catch (error) {
          return error as SessionError;
        }
      })();
      expect((thrown?.cause as Error | undefined)?.message).toMatch(reason);
      expect(JSON.stringify(thrown?.getResponse())).not.toMatch(reason);
      expect(logged.mock.calls.map(([line]) => String(line))).toEqual([expect.stringMatching(reason)]);
      await expect(service.load(context)).rejects.toThrow(SessionError);
    }
  });

  it("a Fastify reply given to SessionService.load() is not taken for an operation over Mercurius' socket (whose context also holds a request)", async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const { reply } = fastifyPair();
    (reply.request as { raw: unknown }).raw = { socket: { once() {}, destroyed: false } };
    await expect(new SessionService(engine).load(reply)).rejects.toThrow(/does not lead to its response/);
    expect(graphqlSessions(engine, reply)).toBeUndefined();
  });

  it('a GraphQL parameter loads by itself where no guard did, and gives the same session as a later guard', async () => {
    const { request, reply } = fastifyPair();
    const context = contextOf('graphql', [{}, {}, { req: request, reply }, {}]);
    const app = {};
    registerEngine(app, engine);
    (request as { server?: unknown }).server = app;
    const fromParam = await paramFactory(Session())(undefined, context);
    const fromService = await new SessionService(engine).load({ req: request, reply });
    expect(fromService).toBe(fromParam);
    const flash = await paramFactory(Flash())(undefined, context);
    expect(flash).toBe((fromParam as { flash: unknown }).flash);
  });

  it('a subscription over a WebSocket (graphql-ws on Apollo, Mercurius) gets read-only sessions of the upgrade request, found through its HTTP server', async () => {
    const { EventEmitter } = await import('node:events');
    const server = {};
    registerEngine(server, engine);
    const upgrade = { headers: {}, socket: { server } };
    const socket = Object.assign(new EventEmitter(), { readyState: 1, protocol: 'graphql-transport-ws', close() {} });
    // Apollo: Nest's default context is { req: graphql-ws' context }; an app's context function may spread it instead.
    for (const gqlContext of [{ req: { connectionInitReceived: true, subscriptions: {}, extra: { socket, request: upgrade } } }, { extra: { socket, request: upgrade } }]) {
      const context = contextOf('graphql', [{}, {}, gqlContext, {}]);
      const sessions = sessionsOf(engine, context)!;
      expect(sessions).toBeInstanceOf(SubscriptionSessions);
      expect(graphqlSessions(undefined, gqlContext)).toBe(sessions); // kept on the operation's context; the engine through the HTTP server
      const session = await paramFactory(Session())(undefined, context) as Session;
      expect(session.isNew).toBe(true);
      expect(await new SessionService(engine).load(gqlContext)).toBe(session);
      expect(() => session.set('visits', 1)).toThrow(SessionReadOnlyError);
    }
    // Mercurius: { request (the Fastify request of the upgrade), reply: { request }, pubsub, id }.
    const request = { headers: {}, raw: { socket: new EventEmitter() }, server };
    const mercurius = { request, reply: { request }, pubsub: { close() {}, subscribe() {} }, id: 1 };
    expect(sessionsOf(engine, contextOf('graphql', [{}, {}, mercurius, {}]))).toBeInstanceOf(SubscriptionSessions);
    expect(RequestSessions.find(request)).toBeUndefined();
  });
});

describe('a session read over a GraphQL WebSocket', () => {
  afterEach(() => vi.restoreAllMocks());

  it('reads as on HTTP, and refuses every change with SessionReadOnlyError naming the call, before anything changes', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const { EventEmitter } = await import('node:events');
    const { MemoryStore } = await import('../../src/index.js');
    const store = new MemoryStore({ sweepInterval: 0 });
    const own = new SessionEngine({ secret: SECRET, store });
    const http = expressPair();
    const written = RequestSessions.of(own, http.req, http.res);
    const state = await written.load('default');
    state.set('userId', 5);
    state.flash.add('info', 'hello');
    await state.save();
    const cookie = `sid=${(state as unknown as { cookieValue: string }).cookieValue ?? own.definition('default').signer.sign(state.id)}`;

    const socket = Object.assign(new EventEmitter(), { readyState: 1, close() {} });
    const context = { req: { extra: { socket, request: { headers: { cookie } } } } };
    const session = await new SessionService(own).load(context);
    expect(session.get('userId')).toBe(5);
    expect(session.has('userId')).toBe(true);
    expect(session.isNew).toBe(false);
    expect(session.toJSON()).toEqual({ userId: 5 });
    expect(session.flash.peek('info')).toEqual(['hello']);
    expect(session.flash.has('info')).toBe(true);
    const refusals: [string, () => unknown][] = [
      ['set', () => session.set('userId', 6)],
      ['delete', () => session.delete('userId')],
      ['clear', () => session.clear()],
      ['setMaxAge', () => session.setMaxAge(1000)],
      ['touch', () => session.touch()],
      ['setUser', () => session.setUser(1)],
      ['flash.add', () => session.flash.add('info', 'more')],
      ['flash.get', () => session.flash.get('info')],
      ['flash.all', () => session.flash.all()],
    ];
    for (const [operation, change] of refusals) {
      expect(change).toThrow(SessionReadOnlyError);
      try {
        change();
      } catch (error) {
        expect((error as SessionReadOnlyError).operation).toBe(operation);
      }
    }
    for (const [operation, change] of [['regenerate', () => session.regenerate()], ['destroy', () => session.destroy()], ['save', () => session.save()]] as const) {
      await expect(change()).rejects.toMatchObject({ name: 'SessionReadOnlyError', operation });
    }
    expect(new SessionReadOnlyError('x', 'set')).toBeInstanceOf(SessionSocketError);
    // Nothing changed, in the session or in the store.
    expect(session.get('userId')).toBe(5);
    expect(session.flash.peek('info')).toEqual(['hello']);
    const stored = store.get(state.id);
    expect(stored?.data).toEqual({ userId: '5' });
    expect(stored?.meta.flash).toEqual({ info: ['hello'] });
    store.close();
  });

  it("is a session SessionService's user calls take: listed as current, and signing its user out everywhere works without changing it", async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const { EventEmitter } = await import('node:events');
    const { MemoryStore } = await import('../../src/index.js');
    const store = new MemoryStore({ sweepInterval: 0 });
    const own = new SessionEngine({ secret: SECRET, store });
    const http = expressPair();
    const state = await RequestSessions.of(own, http.req, http.res).load('default');
    state.setUser('ada');
    await state.save();
    const cookie = `sid=${own.definition('default').signer.sign(state.id)}`;
    const socket = Object.assign(new EventEmitter(), { readyState: 1, close() {} });
    const service = new SessionService(own);
    const session = await service.load({ req: { extra: { socket, request: { headers: { cookie } } } } });
    expect((await service.sessionsOf(session)).map((each) => each.current)).toEqual([true]);
    await expect(service.endSessionsOf(session)).resolves.toBe(1);
    expect(store.get(state.id)).toBeUndefined();
    // A session of another app is refused, not listed through that app's store.
    const other = new SessionEngine({ secret: SECRET, store: new MemoryStore({ sweepInterval: 0 }) });
    await expect(new SessionService(other).sessionsOf(session)).rejects.toThrow(/belongs to another app/);
    store.close();
  });
});
