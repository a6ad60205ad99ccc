// The benchmark's contenders: one small NestJS app each, with the same three routes.
//   GET /hit        increments a counter in the session and returns it
//   GET /read       returns the counter without changing anything
//   GET /untouched  never asks for a session
// Plain .mjs: decorators are applied by calling them as functions (see `controller()` below),
// so nothing has to be compiled; nest-sessions is loaded from the root build (../dist, or
// NEST_SESSIONS_DIST), through its public API only.
import 'reflect-metadata';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Controller,
  Get,
  Injectable,
  Module,
  Req,
  Res,
  UseGuards,
  UseInterceptors,
  createParamDecorator,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { distUrl } from './lib.mjs';

export const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const fromDist = (path) => import(distUrl(path));

/**
 * Declares a controller class from plain methods, applying Nest's decorators as functions.
 * `routes`: { method: { path, params: [paramDecorator, ...], extra: [methodDecorator, ...] } }
 */
function controller(Cls, routes) {
  const proto = Cls.prototype;
  for (const [method, { path, params = [], extra = [] }] of Object.entries(routes)) {
    // What TypeScript would emit: parameter decorators first, then the method's own, bottom-up.
    params.forEach((decorate, index) => decorate(proto, method, index));
    Reflect.defineMetadata('design:paramtypes', params.map(() => Object), proto, method);
    for (const decorate of [Get(path), ...extra].reverse()) {
      decorate(proto, method, Object.getOwnPropertyDescriptor(proto, method));
    }
  }
  Reflect.defineMetadata('design:paramtypes', [], Cls);
  Controller()(Cls);
  return Cls;
}

function module(Cls, metadata) {
  Module(metadata)(Cls);
  return Cls;
}

// ---------------------------------------------------------------------------------------------
// Controllers

/** No session library at all. */
function baselineController() {
  class BaselineController {
    hit() { return { hits: 1 }; }
    read() { return { hits: 1 }; }
    untouched() { return { ok: true }; }
  }
  return controller(BaselineController, { hit: { path: 'hit' }, read: { path: 'read' }, untouched: { path: 'untouched' } });
}

/**
 * Nest's floors: a custom parameter decorator (`createParamDecorator`, as `@Session()` is) that, like
 * `@Session()`, can bind something to its own method, and nothing else.
 *   'param'        the decorator alone
 *   'guard'        the decorator applies `UseGuards(NoopGuard)` (an async guard that allows) to its method
 *   'interceptor'  the decorator applies `UseInterceptors(NoopInterceptor)` to its method
 */
function floorController(binding) {
  class NoopInterceptor {
    intercept(_context, next) { return next.handle(); }
  }
  Injectable()(NoopInterceptor);
  class NoopGuard {
    async canActivate() { return true; }
  }
  Injectable()(NoopGuard);
  const param = createParamDecorator((_data, context) => context.switchToHttp().getRequest());
  const bind = { param: undefined, guard: UseGuards(NoopGuard), interceptor: UseInterceptors(NoopInterceptor) }[binding];
  const Noop = () => (target, key, index) => {
    param()(target, key, index);
    bind?.(target, key, Object.getOwnPropertyDescriptor(target, key));
  };
  class FloorController {
    hit(_req) { return { hits: 1 }; }
    read(_req) { return { hits: 1 }; }
    untouched() { return { ok: true }; }
  }
  return controller(FloorController, {
    hit: { path: 'hit', params: [Noop()] },
    read: { path: 'read', params: [Noop()] },
    untouched: { path: 'untouched' },
  });
}

/** nest-sessions: `@Session() session: Session`. */
function nestSessionsController(Session) {
  class NestSessionsController {
    hit(session) {
      const hits = (session.get('hits') ?? 0) + 1;
      session.set('hits', hits);
      return { hits };
    }
    read(session) { return { hits: session.get('hits') ?? 0 }; }
    untouched() { return { ok: true }; }
  }
  return controller(NestSessionsController, {
    hit: { path: 'hit', params: [Session()] },
    read: { path: 'read', params: [Session()] },
    untouched: { path: 'untouched' },
  });
}

/**
 * Libraries that put a session on the request (`req.session`), read through `@Req()`.
 * `style`: 'property' (express-session, cookie-session) or 'getset' (@fastify/secure-session, @fastify/session).
 */
function requestSessionController(style) {
  const get = style === 'getset' ? (s) => s.get('hits') : (s) => s.hits;
  const set = style === 'getset' ? (s, v) => s.set('hits', v) : (s, v) => { s.hits = v; };
  class RequestSessionController {
    hit(req) {
      const hits = (get(req.session) ?? 0) + 1;
      set(req.session, hits);
      return { hits };
    }
    read(req) { return { hits: get(req.session) ?? 0 }; }
    untouched() { return { ok: true }; }
  }
  return controller(RequestSessionController, {
    hit: { path: 'hit', params: [Req()] },
    read: { path: 'read', params: [Req()] },
    untouched: { path: 'untouched' },
  });
}

/** iron-session: a session is opened per call, on the routes that ask. */
function ironSessionController(getIronSession) {
  const options = { password: SECRET, cookieName: 'iron', cookieOptions: { secure: false } };
  class IronSessionController {
    async hit(req, res) {
      const session = await getIronSession(req, res, options);
      const hits = (session.hits ?? 0) + 1;
      session.hits = hits;
      await session.save();
      return { hits };
    }
    async read(req, res) {
      const session = await getIronSession(req, res, options);
      return { hits: session.hits ?? 0 };
    }
    untouched() { return { ok: true }; }
  }
  return controller(IronSessionController, {
    hit: { path: 'hit', params: [Req(), Res({ passthrough: true })] },
    read: { path: 'read', params: [Req(), Res({ passthrough: true })] },
    untouched: { path: 'untouched' },
  });
}

/**
 * The GraphQL contenders' two operations, sent by POST as JSON (what GraphQL clients send): the
 * mutation `hit` writes the counter (the `/hit` column), the query `read` reads it (`/read`).
 */
export const GRAPHQL_REQUESTS = {
  hit: { method: 'POST', path: 'graphql', body: JSON.stringify({ query: 'mutation { hit }' }) },
  read: { method: 'POST', path: 'graphql', body: JSON.stringify({ query: '{ read }' }) },
};
const GRAPHQL_SCHEMA = 'type Query { read: Int! }\ntype Mutation { hit: Int! }';

/**
 * One GraphQL resolver, schema first (no code-first generation): `hit` and `read` with
 * `@Session()`, or the same work on a constant without a session library.
 */
async function graphqlResolver(Session) {
  const { Mutation, Query, Resolver } = await import('@nestjs/graphql');
  class CounterResolver {
    hit(session) {
      if (Session === undefined) return 1;
      const hits = (session.get('hits') ?? 0) + 1;
      session.set('hits', hits);
      return hits;
    }
    read(session) { return Session === undefined ? 1 : (session.get('hits') ?? 0); }
  }
  const proto = CounterResolver.prototype;
  for (const [method, decorate] of [['hit', Mutation()], ['read', Query()]]) {
    const params = Session === undefined ? [] : [Session()];
    params.forEach((param, index) => param(proto, method, index));
    Reflect.defineMetadata('design:paramtypes', params.map(() => Object), proto, method);
    decorate(proto, method, Object.getOwnPropertyDescriptor(proto, method));
  }
  Reflect.defineMetadata('design:paramtypes', [], CounterResolver);
  Resolver()(CounterResolver);
  return CounterResolver;
}

/** Apollo on Express or Mercurius on Fastify (their Nest drivers' defaults), with nest-sessions' MemoryStore or without sessions. */
async function graphqlApp(platform, withSessions) {
  const { GraphQLModule } = await import('@nestjs/graphql');
  const driver = platform === 'express'
    ? { driver: (await import('@nestjs/apollo')).ApolloDriver }
    : { driver: (await import('@nestjs/mercurius')).MercuriusDriver };
  const imports = [GraphQLModule.forRoot({ ...driver, typeDefs: GRAPHQL_SCHEMA, graphiql: false })];
  let Session;
  let store;
  if (withSessions) {
    const ns = await fromDist('index.js');
    Session = ns.Session;
    store = new ns.MemoryStore();
    imports.unshift(ns.SessionModule.forRoot({ secret: SECRET, store }));
  }
  const AppModule = module(class AppModule {}, { imports, providers: [await graphqlResolver(Session)] });
  return { app: await create(platform, AppModule), cleanup: async () => { await store?.close?.(); } };
}

// ---------------------------------------------------------------------------------------------
// Variants

/** The session's shape as a zod schema (a Standard Schema), for the rows that validate it. */
async function sessionSchema() {
  const { z } = await import('zod');
  return z.object({ hits: z.number().int().nonnegative().optional() });
}

async function nestSessionsApp(platform, storeKind, { schema = false } = {}) {
  const { SessionModule, Session, MemoryStore } = await fromDist('index.js');
  let store;
  let cleanup = async () => {};
  switch (storeKind) {
    case 'memory':
      store = new MemoryStore();
      break;
    case 'cookie': {
      const { CookieStore } = await fromDist('stores/cookie.store.js');
      store = new CookieStore({ secret: SECRET });
      break;
    }
    case 'redis': {
      const { RedisStore } = await fromDist('stores/redis.store.js');
      store = new RedisStore({ url: REDIS_URL, prefix: `bench:${process.pid}:` });
      break;
    }
    case 'redis-node': {
      // A node-redis client as docs/stores/redis.md sets one up; the store leaves it open, so cleanup closes it.
      const { RedisStore } = await fromDist('stores/redis.store.js');
      const { createClient } = await import('redis');
      const client = createClient({ url: REDIS_URL, disableOfflineQueue: true, commandOptions: { timeout: 2000 } });
      client.on('error', () => {});
      await client.connect();
      store = new RedisStore({ client, prefix: `bench:node:${process.pid}:` });
      cleanup = async () => { await client.close().catch(() => client.destroy()); };
      break;
    }
    case 'file': {
      const { FileStore } = await fromDist('stores/file.store.js');
      const directory = mkdtempSync(join(tmpdir(), 'nest-sessions-bench-'));
      store = new FileStore({ directory });
      cleanup = async () => rmSync(directory, { recursive: true, force: true });
      break;
    }
    case 'postgres': {
      const { PostgresStore } = await fromDist('stores/postgres.store.js');
      const { default: pg } = await import('pg');
      const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
      const table = `bench_sessions_${process.pid}`;
      store = new PostgresStore({ pool, tableName: table });
      cleanup = async () => {
        await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
        await pool.end();
      };
      break;
    }
    default:
      throw new Error(`unknown store ${storeKind}`);
  }
  const AppModule = module(class AppModule {}, {
    imports: [SessionModule.forRoot({ secret: SECRET, store, ...(schema ? { schema: await sessionSchema() } : {}) })],
    controllers: [nestSessionsController(Session)],
  });
  const app = await create(platform, AppModule);
  return { app, cleanup: async () => { await store.close?.(); await cleanup(); } };
}

async function create(platform, AppModule) {
  const adapter = platform === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  return NestFactory.create(AppModule, adapter, { logger: ['error'], abortOnError: false });
}

const simple = (platform, makeController) => async () => {
  const AppModule = module(class AppModule {}, { controllers: [makeController()] });
  return { app: await create(platform, AppModule), cleanup: async () => {} };
};

/**
 * Every contender: name → { platform, label, kind, routes?, start() → { app, cleanup } }.
 * kind: 'baseline' (the platform's reference), 'control' (a second copy of the baseline: what a ratio
 * of 1.00 looks like on this machine), 'floor' (Nest's no-op pieces), 'ours', 'peer', and for GraphQL
 * 'graphql-baseline' (the driver without sessions) and 'graphql' (the driver with nest-sessions).
 * routes: the routes worth loading (default /hit, /read, /untouched); a floor's /read is its /hit.
 * requests: what each route sends instead of `GET /<route>` (GraphQL: a POST to /graphql).
 * reference: the contender each ratio is taken against, route for route, instead of the platform's
 * baseline (a GraphQL contender: its driver without sessions).
 */
const BASELINE_ROUTES = ['hit', 'untouched'];
const FLOOR_ROUTES = ['hit'];
const floors = (platform) => ({
  [`${platform}/floor-param`]: { platform, kind: 'floor', routes: FLOOR_ROUTES, label: 'param decorator only', start: simple(platform, () => floorController('param')) },
  [`${platform}/floor-guard`]: { platform, kind: 'floor', routes: FLOOR_ROUTES, label: 'param decorator + per-route async no-op guard', start: simple(platform, () => floorController('guard')) },
  [`${platform}/floor`]: { platform, kind: 'floor', routes: FLOOR_ROUTES, label: "param decorator + per-route no-op interceptor (Nest's floor)", start: simple(platform, () => floorController('interceptor')) },
});

export const VARIANTS = {
  'fastify/baseline': { platform: 'fastify', kind: 'baseline', routes: BASELINE_ROUTES, label: 'no session (baseline)', start: simple('fastify', baselineController) },
  'fastify/control': { platform: 'fastify', kind: 'control', routes: BASELINE_ROUTES, label: 'no session, second app (control)', start: simple('fastify', baselineController) },
  ...floors('fastify'),
  // Diagnostic, not a contender (runs only when BENCH_FILTER names it): the baseline app in a process
  // where an AsyncLocalStorage has run once. On Node 20 that turns on async hooks for the whole
  // process, which every later promise pays for, on every route.
  'fastify/baseline+als': {
    platform: 'fastify',
    kind: 'control',
    label: 'diagnostic: baseline after one AsyncLocalStorage.run()',
    diagnostic: true,
    async start() {
      new AsyncLocalStorage().run(true, () => {});
      return simple('fastify', baselineController)();
    },
  },
  'fastify/ns-memory': { platform: 'fastify', label: 'nest-sessions MemoryStore', kind: 'ours', ours: 'memory', start: () => nestSessionsApp('fastify', 'memory') },
  'fastify/ns-memory+schema': { platform: 'fastify', label: 'nest-sessions MemoryStore, zod schema', kind: 'ours', ours: 'memory', start: () => nestSessionsApp('fastify', 'memory', { schema: true }) },
  'fastify/ns-cookie': { platform: 'fastify', label: 'nest-sessions CookieStore', kind: 'ours', ours: 'cookie', needs: 'stores/cookie.store.js', start: () => nestSessionsApp('fastify', 'cookie') },
  'fastify/ns-redis': { platform: 'fastify', label: 'nest-sessions RedisStore', kind: 'ours', ours: 'redis', needs: 'stores/redis.store.js', start: () => nestSessionsApp('fastify', 'redis') },
  'fastify/ns-redis-node': { platform: 'fastify', label: 'nest-sessions RedisStore, node-redis client', kind: 'ours', ours: 'redis', needs: 'stores/redis.store.js', start: () => nestSessionsApp('fastify', 'redis-node') },
  'fastify/secure-session': {
    platform: 'fastify',
    kind: 'peer',
    label: '@fastify/secure-session (libsodium, cookie)',
    async start() {
      const { default: secureSession } = await import('@fastify/secure-session');
      const AppModule = module(class AppModule {}, { controllers: [requestSessionController('getset')] });
      const app = await create('fastify', AppModule);
      await app.register(secureSession, { key: randomBytes(32), cookie: { path: '/', httpOnly: true } });
      return { app, cleanup: async () => {} };
    },
  },
  'fastify/session': {
    platform: 'fastify',
    kind: 'peer',
    label: '@fastify/session (memory store)',
    async start() {
      const { default: fastifyCookie } = await import('@fastify/cookie');
      const { default: fastifySession } = await import('@fastify/session');
      const AppModule = module(class AppModule {}, { controllers: [requestSessionController('getset')] });
      const app = await create('fastify', AppModule);
      await app.register(fastifyCookie);
      await app.register(fastifySession, { secret: SECRET, saveUninitialized: false, cookie: { secure: false } });
      return { app, cleanup: async () => {} };
    },
  },

  // GraphQL: Mercurius on Fastify, with and without nest-sessions (a ratio of the one to the other).
  'fastify/graphql': { platform: 'fastify', kind: 'graphql-baseline', routes: ['hit', 'read'], requests: GRAPHQL_REQUESTS, label: 'Mercurius, no session (GraphQL baseline)', start: () => graphqlApp('fastify', false) },
  'fastify/graphql-ns-memory': { platform: 'fastify', kind: 'graphql', reference: 'fastify/graphql', routes: ['hit', 'read'], requests: GRAPHQL_REQUESTS, label: 'Mercurius + nest-sessions MemoryStore', start: () => graphqlApp('fastify', true) },

  'express/baseline': { platform: 'express', kind: 'baseline', routes: BASELINE_ROUTES, label: 'no session (baseline)', start: simple('express', baselineController) },
  'express/control': { platform: 'express', kind: 'control', routes: BASELINE_ROUTES, label: 'no session, second app (control)', start: simple('express', baselineController) },
  ...floors('express'),
  'express/ns-memory': { platform: 'express', label: 'nest-sessions MemoryStore', kind: 'ours', ours: 'memory', start: () => nestSessionsApp('express', 'memory') },
  'express/ns-memory+schema': { platform: 'express', label: 'nest-sessions MemoryStore, zod schema', kind: 'ours', ours: 'memory', start: () => nestSessionsApp('express', 'memory', { schema: true }) },
  'express/ns-cookie': { platform: 'express', label: 'nest-sessions CookieStore', kind: 'ours', ours: 'cookie', needs: 'stores/cookie.store.js', start: () => nestSessionsApp('express', 'cookie') },
  'express/ns-file': { platform: 'express', label: 'nest-sessions FileStore', kind: 'ours', ours: 'file', needs: 'stores/file.store.js', start: () => nestSessionsApp('express', 'file') },
  'express/ns-redis': { platform: 'express', label: 'nest-sessions RedisStore', kind: 'ours', ours: 'redis', needs: 'stores/redis.store.js', start: () => nestSessionsApp('express', 'redis') },
  'express/ns-redis-node': { platform: 'express', label: 'nest-sessions RedisStore, node-redis client', kind: 'ours', ours: 'redis', needs: 'stores/redis.store.js', start: () => nestSessionsApp('express', 'redis-node') },
  'express/ns-postgres': { platform: 'express', label: 'nest-sessions PostgresStore', kind: 'ours', ours: 'postgres', needs: 'stores/postgres.store.js', start: () => nestSessionsApp('express', 'postgres') },
  // GraphQL: Apollo on Express, with and without nest-sessions (a ratio of the one to the other).
  'express/graphql': { platform: 'express', kind: 'graphql-baseline', routes: ['hit', 'read'], requests: GRAPHQL_REQUESTS, label: 'Apollo, no session (GraphQL baseline)', start: () => graphqlApp('express', false) },
  'express/graphql-ns-memory': { platform: 'express', kind: 'graphql', reference: 'express/graphql', routes: ['hit', 'read'], requests: GRAPHQL_REQUESTS, label: 'Apollo + nest-sessions MemoryStore', start: () => graphqlApp('express', true) },
  'express/nestjs-session': {
    platform: 'express',
    kind: 'peer',
    label: 'nestjs-session (express-session, memory)',
    async start() {
      const { SessionModule: NestjsSessionModule } = await import('nestjs-session');
      const AppModule = module(class AppModule {}, {
        imports: [NestjsSessionModule.forRoot({ session: { secret: SECRET, resave: false, saveUninitialized: false } })],
        controllers: [requestSessionController('property')],
      });
      return { app: await create('express', AppModule), cleanup: async () => {} };
    },
  },
  'express/connect-redis': {
    platform: 'express',
    kind: 'peer',
    label: 'nestjs-session + connect-redis',
    async start() {
      const { SessionModule: NestjsSessionModule } = await import('nestjs-session');
      const { RedisStore: ConnectRedisStore } = await import('connect-redis');
      const { createClient } = await import('redis');
      const client = createClient({ url: REDIS_URL });
      await client.connect();
      const store = new ConnectRedisStore({ client, prefix: `bench:cr:${process.pid}:` });
      const AppModule = module(class AppModule {}, {
        imports: [NestjsSessionModule.forRoot({ session: { secret: SECRET, resave: false, saveUninitialized: false, store } })],
        controllers: [requestSessionController('property')],
      });
      return { app: await create('express', AppModule), cleanup: async () => { await client.quit().catch(() => {}); } };
    },
  },
  'express/cookie-session': {
    platform: 'express',
    kind: 'peer',
    label: 'cookie-session',
    async start() {
      const { default: cookieSession } = await import('cookie-session');
      const AppModule = module(class AppModule {}, { controllers: [requestSessionController('property')] });
      const app = await create('express', AppModule);
      app.use(cookieSession({ name: 'session', keys: [SECRET] }));
      return { app, cleanup: async () => {} };
    },
  },
  'express/iron-session': {
    platform: 'express',
    kind: 'peer',
    label: 'iron-session (per call)',
    // Opened by the handler itself: routes that do not call it run none of its code.
    perCall: true,
    async start() {
      const { getIronSession } = await import('iron-session');
      const AppModule = module(class AppModule {}, { controllers: [ironSessionController(getIronSession)] });
      return { app: await create('express', AppModule), cleanup: async () => {} };
    },
  },
};
