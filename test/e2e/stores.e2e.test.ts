import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Get, HttpCode, Logger, Module, Param, ParseIntPipe, Post, Redirect } from '@nestjs/common';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { CookieStore, FileStore, Flash, MemoryStore, Session, SessionModule, type AnySessionStore } from '../../src/index.js';
import { PostgresStore } from '../../src/stores/postgres.store.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { shiftableClock } from '../support/clock.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type Platform, type TestApp } from '../support/platforms.js';
import { postgresUrl, redisUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';

const HOUR = 60 * 60 * 1000;
const COOKIE_KEY = 'a-cookie-store-key-that-is-long-enough-0123456789';
const REDIS_URL = redisUrl();
const POSTGRES_URL = postgresUrl();
/** Everything this file puts in Redis, Postgres or on disk is named after this run. */
const RUN = `e2e_stores_${randomBytes(4).toString('hex')}`;

@Controller()
class StoresController {
  @Get('all')
  all(@Session() session: Session) {
    return { data: session.toJSON(), isNew: session.isNew, id: session.isNew ? null : session.id };
  }

  @Get('set/:key/:value')
  set(@Session() session: Session, @Param('key') key: string, @Param('value') value: string) {
    session.set(key, value);
    return { ok: true };
  }

  @Post('regenerate')
  @HttpCode(200)
  async regenerate(@Session() session: Session) {
    await session.regenerate();
    return { ok: true };
  }

  @Post('destroy')
  @HttpCode(200)
  async destroy(@Session() session: Session) {
    await session.destroy();
    return { ok: true };
  }

  @Post('notify/:text')
  @Redirect('/messages', 303)
  notify(@Flash() flash: Flash, @Param('text') text: string) {
    flash.add('info', text);
  }

  @Get('messages')
  messages(@Flash() flash: Flash) {
    return { messages: flash.all() };
  }

  @Get('big/:size/caught')
  bigCaught(@Session() session: Session, @Param('size', ParseIntPipe) size: number) {
    try {
      session.set('big', 'x'.repeat(size));
    } catch (e) {
      return { error: (e as Error).constructor.name, message: (e as Error).message };
    }
    return { ok: true };
  }

  @Get('big/:size')
  big(@Session() session: Session, @Param('size', ParseIntPipe) size: number) {
    session.set('big', 'x'.repeat(size));
    return { ok: true };
  }
}

function moduleWith(store: AnySessionStore) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store })], controllers: [StoresController] })
  class StoresModule {}
  return StoresModule;
}

/** One kind of store: how to check its service once, make one store per platform, and clean up after. */
interface StoreKind {
  name: string;
  /** The data lives on the server, so the server can revoke it. */
  serverSide: boolean;
  setup(): Promise<void>;
  create(platform: Platform, index: number): AnySessionStore;
  teardown(): Promise<void>;
}

const memory: StoreKind = {
  name: 'MemoryStore',
  serverSide: true,
  setup: async () => undefined,
  create: () => new MemoryStore({ sweepInterval: 0 }),
  teardown: async () => undefined,
};

const cookie: StoreKind = {
  name: 'CookieStore',
  serverSide: false,
  setup: async () => undefined,
  create: () => new CookieStore({ secret: COOKIE_KEY }),
  teardown: async () => undefined,
};

const fileDirs: string[] = [];
const file: StoreKind = {
  name: 'FileStore',
  serverSide: true,
  setup: async () => undefined,
  create: () => {
    const directory = mkdtempSync(join(tmpdir(), `${RUN}-`));
    fileDirs.push(directory);
    return new FileStore({ directory, sweepInterval: 0 });
  },
  teardown: async () => {
    for (const directory of fileDirs.splice(0)) rmSync(directory, { recursive: true, force: true });
  },
};

let redisClient: Redis | undefined;
const redisPrefix = `test:${RUN}:${randomUUID()}:`;
const redis: StoreKind = {
  name: 'RedisStore',
  serverSide: true,
  setup: async () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined); // a refused connection is reported below, with what to do
    try {
      await client.connect();
      await client.ping();
    } catch (err) {
      client.disconnect();
      throw new Error(`needs Redis at ${REDIS_URL} (test/support/global-setup.ts starts it, or set REDIS_URL): ${(err as Error).message}`, { cause: err });
    }
    redisClient = client;
  },
  create: (_platform, index) => new RedisStore({ client: redisClient!, prefix: `${redisPrefix}${index}:` }),
  teardown: async () => {
    const client = redisClient;
    redisClient = undefined;
    if (client === undefined) return;
    try {
      const keys = await client.keys(`${redisPrefix}*`);
      if (keys.length > 0) await client.del(...keys);
    } finally {
      await client.quit().catch(() => client.disconnect());
    }
  },
};

let pool: pg.Pool | undefined;
const pgTables: string[] = [];
const postgres: StoreKind = {
  name: 'PostgresStore',
  serverSide: true,
  setup: async () => {
    const candidate = new pg.Pool({ connectionString: POSTGRES_URL, max: 10, connectionTimeoutMillis: 5000 });
    try {
      await candidate.query('SELECT 1');
    } catch (err) {
      await candidate.end();
      throw new Error(`needs PostgreSQL at ${POSTGRES_URL} (test/support/global-setup.ts starts it, or set DATABASE_URL): ${(err as Error).message}`, { cause: err });
    }
    pool = candidate;
  },
  create: (_platform, index) => {
    const tableName = `${RUN}_${index}`;
    pgTables.push(tableName);
    return new PostgresStore({ pool: pool!, tableName, sweepInterval: 0 });
  },
  teardown: async () => {
    const current = pool;
    pool = undefined;
    if (current === undefined) return;
    try {
      for (const table of pgTables.splice(0)) await current.query(`DROP TABLE IF EXISTS "${table}"`);
    } finally {
      await current.end();
    }
  },
};

const kinds: StoreKind[] = [memory, cookie, file, redis, postgres];

/** A cookie value with one character in its middle changed (to another base64url character). */
function tamper(value: string): string {
  const at = Math.floor(value.length / 2);
  return value.slice(0, at) + (value[at] === 'A' ? 'B' : 'A') + value.slice(at + 1);
}

describe.each(kinds)('$name through the module', (kind) => {
  beforeAll(() => kind.setup());
  afterAll(() => kind.teardown());

  describe.each(platforms.map((platform, index) => ({ platform, index, name: platform.name })))('on $name', ({ platform, index }) => {
    let t: TestApp | undefined;
    beforeAll(async () => {
      t = await platform.create(moduleWith(kind.create(platform, index)));
    });
    afterAll(async () => {
      await t?.close();
    });

    const get = (path: string, jar?: CookieJar) => {
      const req = t!.http().get(path);
      const header = jar?.header();
      return header ? req.set('Cookie', header) : req;
    };
    const post = (path: string, jar?: CookieJar) => {
      const req = t!.http().post(path);
      const header = jar?.header();
      return header ? req.set('Cookie', header) : req;
    };
    /** A jar holding only this cookie value. */
    const jarWith = (value: string) => {
      const jar = new CookieJar();
      jar.set('sid', value);
      return jar;
    };

    it('a first write sets the cookie, and the next request reads the session through it', async () => {
      const jar = new CookieJar();
      const first = await get('/set/color/blue', jar);
      expect(first.status).toBe(200);
      const cookies = jar.take(first);
      expect(cookies.map((c) => c.name)).toEqual(['sid']);
      expect(cookies[0].value).not.toBe('');
      const next = await get('/all', jar);
      expect(next.status).toBe(200);
      expect(next.body).toMatchObject({ data: { color: 'blue' }, isNew: false });
    });

    it('a read-only request sends no Set-Cookie', async () => {
      const jar = new CookieJar();
      jar.take(await get('/set/color/blue', jar));
      const read = await get('/all', jar);
      expect(read.body.data).toEqual({ color: 'blue' });
      expect(read.headers['set-cookie']).toBeUndefined();
    });

    if (kind.serverSide) {
      it('a later change is saved in the store and sends no new cookie (the id did not change)', async () => {
        const jar = new CookieJar();
        jar.take(await get('/set/a/1', jar));
        const change = await get('/set/b/2', jar);
        expect(change.headers['set-cookie']).toBeUndefined();
        expect((await get('/all', jar)).body.data).toEqual({ a: '1', b: '2' });
      });
    } else {
      it('the data lives in the cookie: a change re-sends it, a read does not', async () => {
        const jar = new CookieJar();
        jar.take(await get('/set/a/1', jar));
        const before = jar.get('sid')!;
        const change = await get('/set/b/2', jar);
        const resent = jar.take(change);
        expect(resent.map((c) => c.name)).toEqual(['sid']);
        expect(resent[0].value).not.toBe(before);
        expect((await get('/all', jar)).body.data).toEqual({ a: '1', b: '2' });
        // The cookie from before the change still holds the data from before it.
        expect((await get('/all', jarWith(before))).body.data).toEqual({ a: '1' });
        expect((await get('/all', jar)).headers['set-cookie']).toBeUndefined();
      });
    }

    it('regenerate() sends a new cookie and keeps the data', async () => {
      const jar = new CookieJar();
      jar.take(await get('/set/user/ada', jar));
      const oldCookie = jar.get('sid')!;
      const oldId = (await get('/all', jar)).body.id as string;
      const res = await post('/regenerate', jar);
      expect(res.status).toBe(200);
      const sent = jar.take(res);
      expect(sent.map((c) => c.name)).toEqual(['sid']);
      expect(sent[0].value).not.toBe(oldCookie);
      const after = await get('/all', jar);
      expect(after.body.data).toEqual({ user: 'ada' });
      expect(after.body.id).not.toBe(oldId);
      const replay = await get('/all', jarWith(oldCookie));
      expect(replay.status).toBe(200);
      if (kind.serverSide) {
        // The old id is dead at once.
        expect(replay.body).toEqual({ data: {}, isNew: true, id: null });
      } else {
        // A cookie-stored session cannot be revoked by the server: the old cookie still opens, with
        // the old id and the data it carried, until it expires.
        expect(replay.body).toEqual({ data: { user: 'ada' }, isNew: false, id: oldId });
      }
    });

    it('destroy() clears the cookie', async () => {
      const jar = new CookieJar();
      jar.take(await get('/set/user/ada', jar));
      const oldCookie = jar.get('sid')!;
      const res = await post('/destroy', jar);
      expect(res.status).toBe(200);
      const [cleared, ...more] = setCookies(res.headers);
      expect(more).toEqual([]);
      expect(cleared.name).toBe('sid');
      expect(cleared.value).toBe('');
      expect(Date.parse(cleared.attributes.expires as string)).toBeLessThan(Date.now());
      jar.take(res);
      expect(jar.get('sid')).toBeUndefined();
      const replay = await get('/all', jarWith(oldCookie));
      expect(replay.status).toBe(200);
      if (kind.serverSide) {
        // Gone from the store: the old cookie is dead.
        expect(replay.body).toEqual({ data: {}, isNew: true, id: null });
      } else {
        // The server cannot take back a cookie it handed out: a client that kept it still has the data.
        expect(replay.body.data).toEqual({ user: 'ada' });
      }
    });

    it('a flash message survives a redirect and is read once', async () => {
      const jar = new CookieJar();
      const redirect = await post('/notify/saved', jar);
      expect(redirect.status).toBe(303);
      expect(redirect.headers.location).toBe('/messages');
      expect(jar.take(redirect).map((c) => c.name)).toEqual(['sid']);
      const shown = await get(redirect.headers.location, jar);
      expect(shown.body).toEqual({ messages: { info: ['saved'] } });
      jar.take(shown);
      expect((await get('/messages', jar)).body).toEqual({ messages: {} });
    });

    if (kind.serverSide) {
      it('200 parallel requests on one session, each setting its own key, all survive', async () => {
        const jar = new CookieJar();
        jar.take(await get('/set/base/0', jar));
        const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => get(`/set/k${i}/${i}`, jar)));
        expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
        const { data } = (await get('/all', jar)).body as { data: Record<string, string> };
        const expected: Record<string, string> = { base: '0' };
        for (let i = 0; i < 200; i++) expected[`k${i}`] = String(i);
        expect(data).toEqual(expected);
      });
    }
    // No such case for the CookieStore: each response carries the whole session in its cookie, so with
    // parallel requests the client keeps whichever cookie arrived last, by the nature of cookies.

    it('a tampered cookie gives an empty session and a 200, never an error', async () => {
      const jar = new CookieJar();
      jar.take(await get('/set/user/ada', jar));
      const res = await get('/all', jarWith(tamper(jar.get('sid')!)));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: {}, isNew: true, id: null });
      const write = await get('/set/user/eve', jarWith(tamper(jar.get('sid')!)));
      expect(write.status).toBe(200);
      expect(setCookies(write.headers)[0].value).not.toBe(jar.get('sid'));
      // The real cookie still reads the real session.
      expect((await get('/all', jar)).body.data).toEqual({ user: 'ada' });
    });

    if (!kind.serverSide) {
      describe('cookie size and expiry', () => {
        afterEach(() => vi.restoreAllMocks());
        const quiet = () => vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
        const oversized = (res: { headers: Record<string, unknown> }) =>
          setCookies(res.headers).filter((c) => Buffer.byteLength(`${c.name}=${c.value}`) > 4096);

        it('a value that would push the cookie over 4096 bytes makes set() throw SessionTooLargeError naming the size', async () => {
          quiet();
          const jar = new CookieJar();
          jar.take(await get('/set/small/1', jar));
          const res = await get('/big/5000/caught', jar);
          expect(res.status).toBe(200);
          expect(res.body.error).toBe('SessionTooLargeError');
          // The message names the size the cookie would have had, and the limit.
          const numbers = ((res.body.message as string).match(/\d+/g) ?? []).map(Number);
          // 5000 bytes of value take at least 5000 * 4 / 3 characters once encrypted and base64url-encoded.
          expect(numbers.some((n) => n >= (5000 * 4) / 3 && n < (5000 * 4) / 3 + 500)).toBe(true);
          expect(numbers).toContain(4096);
          expect(oversized(res)).toEqual([]);
          // The session is what it was before the refused value.
          jar.take(res);
          expect((await get('/all', jar)).body.data).toEqual({ small: '1' });
        });

        it('a value that fits is accepted up to the limit', async () => {
          const jar = new CookieJar();
          const res = await get('/big/2000/caught', jar);
          expect(res.body).toEqual({ ok: true });
          const [sent] = jar.take(res);
          expect(Buffer.byteLength(`${sent.name}=${sent.value}`)).toBeLessThanOrEqual(4096);
          expect(((await get('/all', jar)).body.data as { big: string }).big).toHaveLength(2000);
        });

        it('the same error, not caught by the handler, is a 500 and no oversized cookie is sent', async () => {
          quiet();
          const jar = new CookieJar();
          jar.take(await get('/set/small/1', jar));
          const res = await get('/big/5000', jar);
          expect(res.status).toBe(500);
          expect(JSON.stringify(res.body)).not.toMatch(/byte/);
          expect(oversized(res)).toEqual([]);
          jar.take(res);
          expect((await get('/all', jar)).body.data).toEqual({ small: '1' });
        });

        it('an expired cookie gives an empty session', async () => {
          const jar = new CookieJar();
          jar.take(await get('/set/user/ada', jar));
          const clock = shiftableClock();
          try {
            clock.advance(23 * HOUR);
            expect((await get('/all', jar)).body.data).toEqual({ user: 'ada' });
            clock.advance(2 * HOUR); // 25 hours after the write: past the default 24-hour idle timeout
            const res = await get('/all', jar);
            expect(res.status).toBe(200);
            expect(res.body).toEqual({ data: {}, isNew: true, id: null });
          } finally {
            clock.restore();
          }
        });
      });
    }
  });
});
