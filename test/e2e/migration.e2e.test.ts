import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { Controller, Get, Module } from '@nestjs/common';
import connectPgSimple from 'connect-pg-simple';
import { RedisStore as ConnectRedisStore } from 'connect-redis';
import session from 'express-session';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { MemoryStore, Session, SessionModule } from '../../src/index.js';
import type { SessionMigrationSource } from '../../src/store.js';
import { expressSessionReader } from '../../src/migration/express-session.js';
import { ControlledStore } from '../support/controlled-store.js';
import { setCookies, type ParsedSetCookie } from '../support/cookie-jar.js';
import { expressSessionApp, type OldSessionCookie } from '../support/express-session-app.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { startDurableRedisServer, type DurableRedisServer } from '../support/durable-redis-server.js';
import { postgresUrl, redisUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const REDIS_URL = redisUrl();
const POSTGRES_URL = postgresUrl();
const RUN = `e2e_migration_${randomBytes(4).toString('hex')}`;
/** The old app signs with the first; the reader is given them the other way round, so the second of its list verifies. */
const OLD_SECRETS = ['old-app-current-secret', 'old-app-previous-secret'];
const READER_SECRETS = [OLD_SECRETS[1], OLD_SECRETS[0]];
const OLD_DATA = { userId: 42, profile: { name: 'Ada', roles: ['admin'] }, cart: [1, 2, 3] };

// express-session's own signing code, to forge and sign cookies exactly as it does.
const fromExpressSession = createRequire(createRequire(import.meta.url).resolve('express-session'));
const signature = fromExpressSession('cookie-signature') as { sign(value: string, secret: string): string };
const oldCookie = (id: string, secret = OLD_SECRETS[0]) => `connect.sid=${encodeURIComponent(`s:${signature.sign(id, secret)}`)}`;

@Controller()
class MigrationController {
  @Get('me')
  me(@Session() session: Session<any>) {
    return { data: session.toJSON(), id: session.isNew ? null : session.id };
  }

  @Get('visit')
  visit(@Session() session: Session<any>) {
    session.set('visits', ((session.get('visits') as number | undefined) ?? 0) + 1);
    return { data: session.toJSON(), id: session.id };
  }

  @Get('logout')
  async logout(@Session() session: Session<any>) {
    await session.destroy();
    return { ok: true };
  }

  @Get('plain')
  plain() {
    return { ok: true };
  }
}

function migratingModule(store: MemoryStore | ControlledStore, migrateFrom: SessionMigrationSource) {
  @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store, migrateFrom, cookie: { secure: false } })], controllers: [MigrationController] })
  class MigratingModule {}
  return MigratingModule;
}

/** Where the old app kept its sessions, seen from the test. */
interface OldStore {
  name: string;
  app: ReturnType<typeof expressSessionApp>;
  reader(): SessionMigrationSource;
  /** The old record's text, or undefined when there is none. */
  text(id: string): Promise<string | undefined>;
  /** How long the old record has left to live, in ms, as its store counts. */
  lifetimeLeft(id: string): Promise<number>;
  /** Writes a record as the old store would, bypassing express-session. */
  plant(id: string, text: string, ttl: number): Promise<void>;
  /** Removes a record, as its expiry would. */
  remove(id: string): Promise<void>;
  close(): Promise<void>;
}

async function connectRedisStore(): Promise<OldStore> {
  const prefix = `${RUN}:old:`;
  const writer = createClient({ url: REDIS_URL });
  await writer.connect();
  const client = new Redis(REDIS_URL);
  const app = expressSessionApp(new ConnectRedisStore({ client: writer, prefix }), OLD_SECRETS);
  return {
    name: 'connect-redis',
    app,
    reader: () => expressSessionReader({ secret: READER_SECRETS, redis: client, prefix }),
    text: async (id) => (await client.get(prefix + id)) ?? undefined,
    lifetimeLeft: (id) => client.pttl(prefix + id),
    plant: async (id, text, ttl) => void (await client.set(prefix + id, text, 'PX', ttl)),
    remove: async (id) => void (await client.del(prefix + id)),
    close: async () => {
      const keys = await client.keys(`${RUN}:*`);
      if (keys.length > 0) await client.del(...keys);
      client.disconnect();
      await writer.close();
    },
  };
}

async function connectPgSimpleStore(): Promise<OldStore> {
  const table = `${RUN}_session`;
  const pool = new pg.Pool({ connectionString: POSTGRES_URL });
  const PgStore = connectPgSimple(session);
  const store = new PgStore({ pool, tableName: table, createTableIfMissing: true, pruneSessionInterval: false });
  const app = expressSessionApp(store, OLD_SECRETS);
  return {
    name: 'connect-pg-simple',
    app,
    reader: () => expressSessionReader({ secret: READER_SECRETS, pool, table }),
    text: async (id) => {
      const result = await pool.query<{ sess: string }>(`SELECT sess::text AS sess FROM "${table}" WHERE sid = $1`, [id]);
      return result.rows[0]?.sess;
    },
    lifetimeLeft: async (id) => {
      const result = await pool.query<{ left: number }>(`SELECT (extract(epoch from expire) * 1000 - $2)::float8 AS left FROM "${table}" WHERE sid = $1`, [id, Date.now()]);
      return result.rows[0]?.left ?? -2;
    },
    plant: async (id, text, ttl) => {
      await pool.query(`INSERT INTO "${table}" (sid, sess, expire) VALUES ($1, $2, to_timestamp($3))`, [id, text, (Date.now() + ttl) / 1000]);
    },
    remove: async (id) => void (await pool.query(`DELETE FROM "${table}" WHERE sid = $1`, [id])),
    close: async () => {
      await pool.query(`DROP TABLE IF EXISTS "${table}"`);
      await pool.end();
    },
  };
}

/** Run, when set, before each read and around each claim of a source made by `withHooks`. */
let beforeFind: (() => Promise<void>) | undefined;
let beforeClaim: (() => Promise<void>) | undefined;
let afterClaim: (() => Promise<void>) | undefined;

function withHooks(source: SessionMigrationSource): SessionMigrationSource {
  return {
    ...source,
    find: async (id) => {
      await beforeFind?.();
      return source.find(id);
    },
    claim: async (id, found, newId, lifetime) => {
      await beforeClaim?.();
      const result = await source.claim(id, found, newId, lifetime);
      await afterClaim?.();
      return result;
    },
  };
}

/** Throws once, as a connection that drops would, then never again. */
function failOnce(clear: () => void): () => Promise<void> {
  return async () => {
    clear();
    throw new Error('connection reset');
  };
}

function ourCookie(cookies: ParsedSetCookie[]): ParsedSetCookie | undefined {
  return cookies.find((cookie) => cookie.name === 'sid');
}

function idOf(cookie: ParsedSetCookie | undefined): string | undefined {
  return cookie === undefined ? undefined : cookie.value.slice(0, cookie.value.lastIndexOf('.'));
}

/** The response deletes the old cookie: an empty value that expired long ago, on the path it was set for. */
function expectOldCookieCleared(cookies: ParsedSetCookie[]): void {
  const cleared = cookies.find((cookie) => cookie.name === 'connect.sid');
  expect(cleared, 'a Set-Cookie clearing connect.sid').toBeDefined();
  expect(cleared!.value).toBe('');
  expect(Date.parse(cleared!.attributes.expires as string)).toBeLessThan(Date.now());
  expect(cleared!.attributes['max-age']).toBe('0');
  expect(cleared!.attributes.path).toBe('/');
}

const oldStores = [
  { name: 'connect-redis', make: connectRedisStore },
  { name: 'connect-pg-simple', make: connectPgSimpleStore },
];

describe.each(oldStores)('migrating from express-session with $name', ({ make }) => {
  let old: OldStore;
  beforeAll(async () => {
    old = await make();
  });
  afterAll(async () => {
    await old?.close();
  });

  describe.each(platforms)('on $name', (platform) => {
    let app: TestApp;
    /** Our store, a memory one behind calls that a test can slow down or fail. */
    let controlled: ControlledStore;
    let store: MemoryStore;
    beforeAll(async () => {
      controlled = new ControlledStore();
      store = controlled.inner;
      app = await platform.create(migratingModule(controlled, withHooks(old.reader())));
    });
    afterAll(async () => {
      await app?.close();
    });

    async function migrate(cookie: OldSessionCookie) {
      const res = await app.http().get('/me').set('Cookie', cookie.pair);
      expect(res.status).toBe(200);
      return { res, body: res.body as { data: Record<string, unknown>; id: string | null }, cookies: setCookies(res.headers) };
    }

    it('moves an old session in once: its data without the cookie object, a new id, the old cookie cleared, the old record gone', async () => {
      const cookie = await old.app.login();
      expect(await old.app.whoami(cookie.pair)).toBe(42);
      expect(JSON.parse((await old.text(cookie.id))!)).toHaveProperty('cookie');
      const sizeBefore = store.size;

      const { body, cookies } = await migrate(cookie);
      expect(body.data).toEqual(OLD_DATA);
      expect(body.id).not.toBeNull();
      expect(body.id).not.toBe(cookie.id);
      expect(idOf(ourCookie(cookies))).toBe(body.id);
      expectOldCookieCleared(cookies);
      // Moved into our store, as a session of ours.
      expect(store.size).toBe(sizeBefore + 1);
      expect(store.get(body.id!)?.data).toEqual({ userId: '42', profile: '{"name":"Ada","roles":["admin"]}', cart: '[1,2,3]' });
      // The old store holds no data of it any more: a marker that lives as long as the new session
      // has left (the old one had a day, as connect-redis and connect-pg-simple give by default).
      const left = await old.text(cookie.id);
      expect(left).not.toContain('Ada');
      expect(left).not.toContain('userId');
      const newLifetime = store.get(body.id!)!.expiresAt - Date.now();
      expect(newLifetime).toBeGreaterThan(DAY - 60_000);
      expect(Math.abs((await old.lifetimeLeft(cookie.id)) - newLifetime)).toBeLessThan(2000);
      expect(await old.app.whoami(cookie.pair)).toBeNull();

      // From now on the client comes with our cookie: the same session, nothing about the old one.
      const next = await app.http().get('/visit').set('Cookie', `sid=${ourCookie(cookies)!.value}`);
      expect(next.status).toBe(200);
      expect(next.body).toEqual({ data: { ...OLD_DATA, visits: 1 }, id: body.id });
      expect(setCookies(next.headers).some((each) => each.name === 'connect.sid')).toBe(false);
      expect(store.size).toBe(sizeBefore + 1);
    });

    it('the old cookie alone leads to the new session only while its marker lives, and never to one that ended', async () => {
      const cookie = await old.app.login();
      const first = await migrate(cookie);
      // A request of the same page that still had only the old cookie: the same new session.
      const again = await migrate(cookie);
      expect(again.body).toEqual(first.body);
      expect(idOf(ourCookie(again.cookies))).toBe(first.body.id);
      expectOldCookieCleared(again.cookies);
      // Signed out of the new session: the old cookie leads nowhere.
      const logout = await app.http().get('/logout').set('Cookie', `sid=${ourCookie(first.cookies)!.value}`);
      expect(logout.status).toBe(200);
      const afterLogout = await migrate(cookie);
      expect(afterLogout.body).toEqual({ data: {}, id: null });
      expect(ourCookie(afterLogout.cookies)).toBeUndefined();

      // Once the marker has expired: nothing either.
      const other = await old.app.login();
      const moved = await migrate(other);
      expect(moved.body.data).toEqual(OLD_DATA);
      await old.remove(other.id);
      const late = await migrate(other);
      expect(late.body).toEqual({ data: {}, id: null });
      expect(late.cookies).toEqual([]);
    });

    it('carries the expiry over: the old remaining lifetime, within our idle timeout; a browser-session cookie stays one', async () => {
      const short = await old.app.login(2 * HOUR);
      const oldExpires = Date.parse(JSON.parse((await old.text(short.id))!).cookie.expires as string);
      const migrated = await migrate(short);
      expect(Math.abs(store.get(migrated.body.id!)!.expiresAt - oldExpires)).toBeLessThan(2000);
      expect(Number(ourCookie(migrated.cookies)!.attributes['max-age'])).toBeGreaterThan(2 * 3600 - 5);
      expect(Number(ourCookie(migrated.cookies)!.attributes['max-age'])).toBeLessThanOrEqual(2 * 3600);

      // 30 days in express-session: our idle timeout (24 hours by default) bounds it.
      const long = await old.app.login(30 * DAY);
      const bounded = await migrate(long);
      expect(Math.abs(store.get(bounded.body.id!)!.expiresAt - (Date.now() + DAY))).toBeLessThan(5000);
      expect(Number(ourCookie(bounded.cookies)!.attributes['max-age'])).toBeLessThanOrEqual(DAY / 1000);

      // No maxAge in express-session: a cookie that ends with the browser, here too.
      const browser = await old.app.login();
      const sessionCookie = await migrate(browser);
      expect(ourCookie(sessionCookie.cookies)!.attributes['max-age']).toBeUndefined();
      expect(ourCookie(sessionCookie.cookies)!.attributes.expires).toBeUndefined();

      // A browser-session record names no end; its store ends it (connect-redis's and
      // connect-pg-simple's ttl, here 2 hours): so does the new session, and so does its marker.
      const planted = `browser-${randomBytes(6).toString('hex')}`;
      await old.plant(planted, JSON.stringify({ cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, ...OLD_DATA }), 2 * HOUR);
      const storeEnded = await migrate({ id: planted, pair: oldCookie(planted) });
      expect(storeEnded.body.data).toEqual(OLD_DATA);
      expect(Math.abs(store.get(storeEnded.body.id!)!.expiresAt - (Date.now() + 2 * HOUR))).toBeLessThan(5000);
      expect(ourCookie(storeEnded.cookies)!.attributes['max-age']).toBeUndefined();
      expect(Math.abs((await old.lifetimeLeft(planted)) - 2 * HOUR)).toBeLessThan(5000);
    });

    it('a request with our cookie never looks at the old one', async () => {
      const first = await migrate(await old.app.login());
      const ours = `sid=${ourCookie(first.cookies)!.value}`;
      const other = await old.app.login();
      const res = await app.http().get('/me').set('Cookie', `${other.pair}; ${ours}`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: OLD_DATA, id: first.body.id });
      expect(setCookies(res.headers)).toEqual([]);
      // The other old session is still where it was, untouched.
      expect(await old.app.whoami(other.pair)).toBe(42);
    });

    it('a tampered, foreign-signed, unsigned or unknown old cookie gives an empty session and leaves the old record alone', async () => {
      const cookie = await old.app.login();
      const value = decodeURIComponent(cookie.pair.slice('connect.sid='.length));
      const last = value.at(-1) === 'A' ? 'B' : 'A';
      const tampered = `connect.sid=${encodeURIComponent(value.slice(0, -1) + last)}`;
      const otherId = `connect.sid=${encodeURIComponent(`s:${cookie.id.slice(0, -1)}${cookie.id.endsWith('x') ? 'y' : 'x'}${value.slice(value.lastIndexOf('.'))}`)}`;
      const bad = [tampered, otherId, oldCookie(cookie.id, 'a-secret-the-old-app-never-had'), `connect.sid=${cookie.id}`, oldCookie('no-such-session')];
      for (const each of bad) {
        const res = await app.http().get('/me').set('Cookie', each);
        expect(res.status, each).toBe(200);
        expect(res.body, each).toEqual({ data: {}, id: null });
        expect(setCookies(res.headers), each).toEqual([]);
      }
      expect(await old.app.whoami(cookie.pair)).toBe(42);
      // A session given data after a bad old cookie is a new one of ours, the old record still untouched.
      const visit = await app.http().get('/visit').set('Cookie', tampered);
      expect(visit.body.data).toEqual({ visits: 1 });
      expect(await old.app.whoami(cookie.pair)).toBe(42);
    });

    it('an expired old session, or a stored record that is no express-session session, gives nothing', async () => {
      const expired = `expired-${randomBytes(6).toString('hex')}`;
      await old.plant(expired, JSON.stringify({ cookie: { originalMaxAge: 1000, expires: new Date(Date.now() - 1000).toISOString() }, userId: 7 }), HOUR);
      const garbage = `garbage-${randomBytes(6).toString('hex')}`;
      await old.plant(garbage, JSON.stringify({ cookie: { expires: 'not a date' }, userId: 7 }), HOUR);
      for (const id of [expired, garbage]) {
        const res = await app.http().get('/me').set('Cookie', oldCookie(id));
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ data: {}, id: null });
        expect(setCookies(res.headers)).toEqual([]);
      }
    });

    // Without delay, the first request often claims before the others have read, and they find its
    // marker; with a store that takes 30 ms a write, all read the old session and race to claim it.
    it.each([0, 30])('concurrent first requests of one old session make one new session, not two (our store answering in %i ms)', async (delay) => {
      const cookie = await old.app.login();
      const sizeBefore = store.size;
      controlled.delay = delay;
      let responses;
      try {
        responses = await Promise.all(Array.from({ length: 20 }, () => app.http().get('/me').set('Cookie', cookie.pair)));
      } finally {
        controlled.delay = 0;
      }
      const ids = new Set<string | undefined>();
      for (const res of responses) {
        expect(res.status).toBe(200);
        expect(res.body.data).toEqual(OLD_DATA);
        const cookies = setCookies(res.headers);
        expectOldCookieCleared(cookies);
        ids.add(idOf(ourCookie(cookies)));
        ids.add(res.body.id as string);
      }
      expect(ids.size).toBe(1);
      expect([...ids][0]).toEqual(expect.any(String));
      expect(store.size).toBe(sizeBefore + 1);
    });

    it('a session the old app changes between our read and our claim is read again, and moved with the change', async () => {
      const cookie = await old.app.login();
      const sizeBefore = store.size;
      // The old app, still running, writes the session after our read, before our first claim.
      let claims = 0;
      beforeClaim = async () => {
        if (claims++ === 0) await old.app.visit(cookie.pair);
      };
      let res;
      try {
        res = await app.http().get('/me').set('Cookie', cookie.pair);
      } finally {
        beforeClaim = undefined;
      }
      expect(claims).toBe(2);
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual({ ...OLD_DATA, visits: 1 });
      expectOldCookieCleared(setCookies(res.headers));
      // The session written for the first attempt was removed.
      expect(store.size).toBe(sizeBefore + 1);
      expect(await old.app.whoami(cookie.pair)).toBeNull();
    });

    it('the old session changed under every claim but the last, which lost to another request: its session is followed', async () => {
      const cookie = await old.app.login();
      const sizeBefore = store.size;
      // The old app writes the session before our first two claims; before the third, another
      // request with the same cookie moves it.
      let claims = 0;
      let other: Awaited<ReturnType<typeof migrate>> | undefined;
      beforeClaim = async () => {
        const n = claims++;
        if (n < 2) await old.app.visit(cookie.pair);
        else if (n === 2) other = await migrate(cookie);
      };
      let res;
      try {
        res = await app.http().get('/me').set('Cookie', cookie.pair);
      } finally {
        beforeClaim = undefined;
      }
      expect(claims).toBe(4);
      expect(other!.body.data).toEqual({ ...OLD_DATA, visits: 2 });
      expect(res.status).toBe(200);
      expect(res.body).toEqual(other!.body);
      const cookies = setCookies(res.headers);
      expect(idOf(ourCookie(cookies))).toBe(other!.body.id);
      expectOldCookieCleared(cookies);
      expect(store.size).toBe(sizeBefore + 1);
    });

    it('a claim that lands but whose answer is lost moves the session all the same', async () => {
      const cookie = await old.app.login();
      const sizeBefore = store.size;
      afterClaim = failOnce(() => (afterClaim = undefined));
      let res;
      try {
        res = await app.http().get('/me').set('Cookie', cookie.pair);
      } finally {
        afterClaim = undefined;
      }
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual(OLD_DATA);
      const cookies = setCookies(res.headers);
      expect(idOf(ourCookie(cookies))).toBe(res.body.id);
      expectOldCookieCleared(cookies);
      expect(store.size).toBe(sizeBefore + 1);
      expect(await old.app.whoami(cookie.pair)).toBeNull();
      // A request that still had only the old cookie: the same session.
      expect((await migrate(cookie)).body).toEqual(res.body);
    });

    it('a claim that lands with its answer lost and the old store unreadable after it answers 503; the retry gets the old session', async () => {
      const cookie = await old.app.login();
      afterClaim = failOnce(() => {
        afterClaim = undefined;
        beforeFind = failOnce(() => (beforeFind = undefined));
      });
      let failed;
      try {
        failed = await app.http().get('/me').set('Cookie', cookie.pair);
      } finally {
        afterClaim = undefined;
        beforeFind = undefined;
      }
      expect(failed.status).toBe(503);
      expect(setCookies(failed.headers)).toEqual([]);
      const { body, cookies } = await migrate(cookie);
      expect(body.data).toEqual(OLD_DATA);
      expect(idOf(ourCookie(cookies))).toBe(body.id);
      expectOldCookieCleared(cookies);
      const next = await app.http().get('/me').set('Cookie', `sid=${ourCookie(cookies)!.value}`);
      expect(next.body).toEqual(body);
    });

    it('a write to our store that fails answers 503 and loses nothing: the old session stays, and the next request moves it', async () => {
      const cookie = await old.app.login();
      const sizeBefore = store.size;
      controlled.failNext('set');
      const failed = await app.http().get('/me').set('Cookie', cookie.pair);
      expect(failed.status).toBe(503);
      expect(setCookies(failed.headers)).toEqual([]);
      expect(await old.app.whoami(cookie.pair)).toBe(42);
      expect(store.size).toBe(sizeBefore);
      const { body, cookies } = await migrate(cookie);
      expect(body.data).toEqual(OLD_DATA);
      expectOldCookieCleared(cookies);
      expect(store.size).toBe(sizeBefore + 1);
    });
  });
});

describe('an app without migrateFrom', () => {
  it.each(platforms)('on $name: a connect.sid cookie is nobody\'s business', async (platform) => {
    @Module({ imports: [SessionModule.forRoot({ secret: SECRET })], controllers: [MigrationController] })
    class PlainModule {}
    const app = await platform.create(PlainModule);
    try {
      const res = await app.http().get('/me').set('Cookie', oldCookie('some-old-session'));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ data: {}, id: null });
      expect(setCookies(res.headers)).toEqual([]);
    } finally {
      await app.close();
    }
  });
});

describe('migrating while the old store is down', () => {
  let server: DurableRedisServer;
  let writer: ReturnType<typeof createClient>;
  let client: Redis;
  let oldApp: ReturnType<typeof expressSessionApp>;
  const apps: TestApp[] = [];

  beforeAll(async () => {
    server = await startDurableRedisServer();
    const url = `redis://127.0.0.1:${server.port}`;
    writer = createClient({ url, socket: { reconnectStrategy: 50 } });
    writer.on('error', () => undefined);
    await writer.connect();
    client = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 50 });
    client.on('error', () => undefined);
    oldApp = expressSessionApp(new ConnectRedisStore({ client: writer, prefix: 'sess:' }), OLD_SECRETS);
    for (const platform of platforms) {
      apps.push(await platform.create(migratingModule(new MemoryStore({ sweepInterval: 0 }), expressSessionReader({ secret: OLD_SECRETS, redis: client }))));
    }
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    client?.disconnect();
    await writer?.close().catch(() => undefined);
    await server?.dispose();
  });

  it('answers 503 to a request that brings an old cookie, serves every other request, and recovers when the store is back', async () => {
    // One old session per app: each app has a store of its own.
    const cookies = await Promise.all(apps.map(() => oldApp.login()));
    await server.kill();
    for (const [i, app] of apps.entries()) {
      const cookie = cookies[i];
      const res = await app.http().get('/me').set('Cookie', cookie.pair);
      expect(res.status).toBe(503);
      expect(setCookies(res.headers)).toEqual([]);
      expect((await app.http().get('/me')).status).toBe(200);
      const plain = await app.http().get('/plain').set('Cookie', cookie.pair);
      expect(plain.status).toBe(200);
      expect(setCookies(plain.headers)).toEqual([]);
    }
    await server.start();
    for (const [i, app] of apps.entries()) {
      const cookie = cookies[i];
      let res = await app.http().get('/me').set('Cookie', cookie.pair);
      for (let i = 0; i < 40 && res.status === 503; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        res = await app.http().get('/me').set('Cookie', cookie.pair);
      }
      // The old session was kept for later: it moves now.
      expect(res.status).toBe(200);
      expect(res.body.data).toEqual(OLD_DATA);
      expect(res.body.id).toEqual(expect.any(String));
      const moved = setCookies(res.headers);
      expect(idOf(ourCookie(moved))).toBe(res.body.id);
      expectOldCookieCleared(moved);
    }
  });
});

describe('migrating into a session with a schema', () => {
  let old: OldStore;
  const apps: { name: string; app: TestApp; store: MemoryStore }[] = [];
  const accepting = z.object({ userId: z.number(), profile: z.object({ name: z.string(), roles: z.array(z.string()) }), cart: z.array(z.number()) });
  const refusing = z.object({ userId: z.string() });

  beforeAll(async () => {
    old = await connectRedisStore();
    for (const platform of platforms) {
      for (const [name, schema] of [['accepting', accepting], ['refusing', refusing]] as const) {
        const store = new MemoryStore({ sweepInterval: 0 });
        @Module({
          imports: [SessionModule.forRoot({ secret: SECRET, store, schema, migrateFrom: old.reader(), cookie: { secure: false } })],
          controllers: [MigrationController],
        })
        class SchemaMigratingModule {}
        apps.push({ name: `${name} on ${platform.name}`, app: await platform.create(SchemaMigratingModule), store });
      }
    }
  });
  afterAll(async () => {
    await Promise.all(apps.map(({ app }) => app.close()));
    await old?.close();
  });

  it('moves in data the schema accepts; data it refuses is not moved, and the old session stays where it is', async () => {
    for (const { name, app, store } of apps) {
      const cookie = await old.app.login();
      const res = await app.http().get('/me').set('Cookie', cookie.pair);
      expect(res.status, name).toBe(200);
      if (name.startsWith('accepting')) {
        expect(res.body.data, name).toEqual(OLD_DATA);
        expect(store.size, name).toBe(1);
        expect(await old.app.whoami(cookie.pair), name).toBeNull();
      } else {
        expect(res.body, name).toEqual({ data: {}, id: null });
        expect(setCookies(res.headers), name).toEqual([]);
        expect(store.size, name).toBe(0);
        expect(await old.app.whoami(cookie.pair), name).toBe(42);
      }
    }
  });
});
