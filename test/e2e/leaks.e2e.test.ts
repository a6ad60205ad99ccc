import {
  BadRequestException,
  Controller,
  Get,
  Injectable,
  Module,
  Post,
  Req,
  Res,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore, Flash, MemoryStore, Session, SessionModule, SessionService, UseSession } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CookieJar } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { postgresUrl, redisUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';

// A gc() for this process without restarting node: the flag is read when a new context is made.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Weak references to everything a request brought along: the platform's request (and Fastify's
 * raw Node request under it) and the session object handed to the route. Only weak references:
 * if any of them survives a full GC after the responses, something of ours kept it.
 */
const tracked: { label: string; ref: WeakRef<object> }[] = [];
function track(label: string, req: any, session?: object): void {
  tracked.push({ label: `${label}: request`, ref: new WeakRef(req) });
  if (req.raw !== undefined) tracked.push({ label: `${label}: raw request`, ref: new WeakRef(req.raw) });
  if (req.res !== undefined) tracked.push({ label: `${label}: response`, ref: new WeakRef(req.res) });
  if (session !== undefined) tracked.push({ label: `${label}: session`, ref: new WeakRef(session) });
}

/** What handlers saw from a timer they scheduled, after their response had gone. */
const later: { id: string | undefined; visits: unknown }[] = [];

@Injectable()
class GuardThatLoads implements CanActivate {
  constructor(private readonly sessions: SessionService) {}
  async canActivate(context: ExecutionContext): Promise<boolean> {
    const session = await this.sessions.load(context);
    session.set('guarded', true);
    track('guard', context.switchToHttp().getRequest(), session);
    return true;
  }
}

@Controller()
class LeakController {
  constructor(private readonly sessions: SessionService) {}

  @Get('untouched')
  untouched(@Req() req: object) {
    track('untouched', req);
    return { ok: true };
  }

  @Get('count')
  count(@Session() session: Session, @Req() req: object) {
    track('count', req, session);
    const visits = ((session.get('visits') as number | undefined) ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }

  @Get('read')
  read(@Session() session: Session, @Req() req: object) {
    track('read', req, session);
    return { visits: session.get('visits') ?? null };
  }

  @Post('regenerate')
  async regenerate(@Session() session: Session, @Req() req: object) {
    track('regenerate', req, session);
    await session.regenerate();
    session.set('user', 'u');
    return { ok: true };
  }

  @Post('destroy')
  async destroy(@Session() session: Session, @Req() req: object) {
    track('destroy', req, session);
    await session.destroy();
    return { ok: true };
  }

  @Get('flash')
  flash(@Flash() flash: Flash, @Req() req: object) {
    track('flash', req, flash);
    flash.add('info', 'hello');
    return { messages: flash.all() };
  }

  @Get('throws')
  throws(@Flash() flash: Flash, @Req() req: object) {
    track('throws', req, flash);
    flash.add('error', 'kept');
    throw new BadRequestException();
  }

  @Get('guarded')
  @UseGuards(GuardThatLoads)
  guarded(@Req() req: object) {
    track('guarded', req);
    return { ok: true };
  }

  @Get('raw')
  raw(@Session() session: Session, @Req() req: object, @Res() res: any) {
    track('raw', req, session);
    session.set('raw', true);
    if (typeof res.send === 'function' && typeof res.code === 'function') void res.code(200).send({ ok: true });
    else res.status(200).json({ ok: true });
  }

  @Get('current')
  @UseSession()
  current(@Req() req: object) {
    const session = this.sessions.current();
    track('current', req, session);
    session?.set('visits', 1);
    return { id: session?.id ?? null };
  }

  @Get('later')
  @UseSession()
  later(@Session() session: Session, @Req() req: object) {
    track('later', req, session);
    session.set('visits', 7);
    // Scheduled inside the request: AsyncLocalStorage carries the request's context into it.
    setTimeout(() => {
      const seen = this.sessions.current();
      later.push({ id: seen?.id, visits: seen?.get('visits') });
    }, 30);
    return { id: session.id };
  }
}

function moduleWith(store: SessionStore) {
  @Module({
    // A short idle timeout, so whatever reaches Redis expires by itself.
    imports: [SessionModule.forRoot({ secret: SECRET, store, idleTimeout: 60_000 })],
    controllers: [LeakController],
    providers: [GuardThatLoads],
  })
  class LeakModule {}
  return LeakModule;
}

// Names of this file only: a directory, a Redis key prefix and a PostgreSQL table of its own.
const run = randomBytes(4).toString('hex');
const table = `nest_sessions_leaks_${run}`;
let directory: string;
let pool: pg.Pool | undefined;
let stores = 0;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'nest-sessions-leaks-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
  if (pool !== undefined) {
    await pool.query(`DROP TABLE IF EXISTS "${table}"`);
    await pool.end();
  }
});

/** Every store, each created fresh for one app. Redis and PostgreSQL are the run's own (test/support/services.ts). */
const storeKinds: { store: string; create: () => SessionStore }[] = [
  { store: 'MemoryStore', create: () => new MemoryStore({ sweepInterval: 0 }) },
  { store: 'FileStore', create: () => new FileStore({ directory: join(directory, String(++stores)), sweepInterval: 0, fsync: false }) },
  { store: 'RedisStore', create: () => new RedisStore({ url: redisUrl(), prefix: `nest-sessions:leaks:${run}:${++stores}:` }) },
  {
    store: 'PostgresStore',
    create: () => {
      pool ??= new pg.Pool({ connectionString: postgresUrl(), max: 4 });
      return new PostgresStore({ pool, tableName: table, sweepInterval: 0 });
    },
  },
];

/** Collects until every tracked object is gone, or gives up; returns the labels still alive. */
async function collect(): Promise<string[]> {
  let alive: string[] = [];
  for (let round = 0; round < 20; round++) {
    // A WeakRef deref'd or created in this job keeps its target until the job ends: yield first.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    alive = tracked.filter((t) => t.ref.deref() !== undefined).map((t) => t.label);
    if (alive.length === 0) return alive;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return alive;
}

describe.each(platforms)('SessionService.current() after the response, on $name', (platform) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await platform.create(moduleWith(new MemoryStore({ sweepInterval: 0 })));
  });
  afterAll(() => t?.close());

  it('sees the session from a timer scheduled by the handler, and undefined outside any request', async () => {
    later.length = 0;
    const sessions = t.app.get(SessionService);
    const res = await t.http().get('/later');
    expect(res.status).toBe(200);
    const id = (res.body as { id: string }).id;
    expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Out here, after the response and outside any request, there is no current session.
    expect(sessions.current()).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(later).toEqual([{ id, visits: 7 }]);
    expect(sessions.current()).toBeUndefined();
    // Nor in a timer this test schedules itself.
    const fromTimer = await new Promise((resolve) => setTimeout(() => resolve(sessions.current()), 0));
    expect(fromTimer).toBeUndefined();
  });
});

// The memory store on every platform variant; the other stores on plain Express and plain Fastify.
const cases = [
  ...platforms.map((platform) => ({ platform, name: platform.name, ...storeKinds[0], rounds: 30 })),
  ...storeKinds.slice(1).flatMap((kind) =>
    platforms.filter((p) => p.name === 'express' || p.name === 'fastify').map((platform) => ({ platform, name: platform.name, ...kind, rounds: 12 })),
  ),
];

describe.each(cases)('nothing per request is kept after the response, $store on $name', ({ platform, create, rounds }) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await platform.create(moduleWith(create()));
  });
  afterAll(() => t?.close());

  it('lets every request, raw request, response and session object be garbage-collected after many requests', async () => {
    tracked.length = 0;
    for (let i = 0; i < rounds; i++) {
      const jar = new CookieJar();
      const send = async (method: 'get' | 'post', path: string, status = 200) => {
        const req = method === 'get' ? t.http().get(path) : t.http().post(path);
        const cookie = jar.header();
        const res = await (cookie === '' ? req : req.set('Cookie', cookie));
        expect(res.status, `${method.toUpperCase()} ${path}`).toBe(status);
        jar.take(res);
      };
      await send('get', '/untouched');
      await send('get', '/count');
      await send('get', '/count');
      await send('get', '/read');
      await send('get', '/flash');
      await send('get', '/throws', 400);
      await send('get', '/flash');
      await send('get', '/guarded');
      await send('get', '/raw');
      await send('get', '/current');
      await send('post', '/regenerate', 201);
      await send('get', '/read');
      await send('post', '/destroy', 201);
      // A tampered cookie and an unknown id: no session adopted, nothing kept either.
      jar.set('sid', `${'x'.repeat(43)}.${'y'.repeat(43)}`);
      await send('get', '/read');
    }
    const untouched = tracked.filter((entry) => entry.label.startsWith('untouched')).length;
    expect(untouched).toBeGreaterThanOrEqual(rounds);
    expect(tracked.length).toBeGreaterThan(rounds * 14);

    const alive = await collect();
    expect(alive, `still reachable after GC: ${[...new Set(alive)].join(', ')}`).toEqual([]);
  });
});
