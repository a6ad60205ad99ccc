import { randomBytes, randomUUID } from 'node:crypto';
import { Controller, Get, Logger, Module, Query } from '@nestjs/common';
import { type } from 'arktype';
import { Redis } from 'ioredis';
import * as v from 'valibot';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import {
  CookieStore,
  CsrfToken,
  Flash,
  MemoryStore,
  Session,
  SessionModule,
  SessionValidationError,
  type AnySessionStore,
} from '../../src/index.js';
import type { ClientSessionStore, SessionRecord, SessionStore } from '../../src/store.js';
import type { StandardSchemaV1 } from '../../src/schema/standard-schema.js';
import { RedisStore } from '../../src/stores/redis.store.js';
import { CSRF_SECRET_KEY } from '../../src/session/session.constants.js';
import { SessionIdSigner } from '../../src/session/session-id.js';
import { CookieJar, setCookies } from '../support/cookie-jar.js';
import { platforms, type TestApp } from '../support/platforms.js';
import { redisUrl } from '../support/services.js';
import { SECRET } from './app.fixture.js';

const COOKIE_KEY = 'a-cookie-store-key-that-is-long-enough-0123456789';
const PREFS_COOKIE_KEY = 'another-cookie-store-key-long-enough-0123456789';
const REDIS_URL = redisUrl();
const RUN = `e2e_schema_${randomBytes(4).toString('hex')}`;
/** A value no log line may ever show. */
const SECRET_VALUE = 'card-4111-1111-1111-1111';

// The same session shape in each library: a strict object (unknown keys refused), a default that
// must never be written, a nested array. And a named session `prefs` with a required key.
const zodSchema = z.strictObject({
  userId: z.number().int().optional(),
  visits: z.number().int().default(0),
  theme: z.enum(['light', 'dark']).optional(),
  cart: z.object({ items: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })) }).optional(),
});
const zodPrefs = z.object({ lang: z.enum(['en', 'fr']), tz: z.string().optional() });

const valibotSchema = v.strictObject({
  userId: v.optional(v.pipe(v.number(), v.integer())),
  visits: v.optional(v.pipe(v.number(), v.integer()), 0),
  theme: v.optional(v.picklist(['light', 'dark'])),
  cart: v.optional(v.object({ items: v.array(v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) })) })),
});
const valibotPrefs = v.object({ lang: v.picklist(['en', 'fr']), tz: v.optional(v.string()) });

const arktypeSchema = type({
  '+': 'reject',
  'userId?': 'number.integer',
  visits: 'number.integer = 0',
  'theme?': "'light' | 'dark'",
  'cart?': { items: type({ sku: 'string', qty: 'number.integer > 0' }).array() },
});
const arktypePrefs = type({ lang: "'en' | 'fr'", 'tz?': 'string' });

interface Library {
  name: string;
  schema: StandardSchemaV1;
  prefs: StandardSchemaV1;
}
const libraries: Library[] = [
  { name: 'zod', schema: zodSchema, prefs: zodPrefs },
  { name: 'valibot', schema: valibotSchema, prefs: valibotPrefs },
  { name: 'arktype', schema: arktypeSchema, prefs: arktypePrefs },
];

@Controller()
class SchemaController {
  @Get('all')
  all(@Session() session: Session) {
    return { data: session.toJSON(), isNew: session.isNew, id: session.isNew ? null : session.id };
  }

  /** Sets every key of `data` (JSON), errors uncaught. */
  @Get('set')
  set(@Session() session: Session, @Query('data') data: string) {
    for (const [key, value] of Object.entries(JSON.parse(data) as Record<string, unknown>)) session.set(key, value);
    return { ok: true };
  }

  /** Changes the stored cart in place, without set(): the save must find it. */
  @Get('mutate')
  mutate(@Session() session: Session) {
    (session.get('cart') as { items: { qty: unknown }[] }).items[0].qty = 'many';
    return { ok: true };
  }

  /** Sets a cart that matches, then changes it in place. */
  @Get('set-then-mutate')
  setThenMutate(@Session() session: Session) {
    const cart = { items: [{ sku: 'b-2', qty: 1 }] };
    session.set('cart', cart);
    cart.items[0].qty = -1;
    return { ok: true };
  }

  @Get('try-set')
  trySet(@Session() session: Session, @Query('key') key: string, @Query('value') value: string) {
    return attempt(() => session.set(key, JSON.parse(value)));
  }

  @Get('try-delete')
  tryDelete(@Session() session: Session, @Query('key') key: string) {
    return attempt(() => session.delete(key));
  }

  @Get('form')
  form(@CsrfToken() csrf: string) {
    return { csrf };
  }

  @Get('prefs')
  prefs(@Session('prefs') prefs: Session) {
    return { data: prefs.toJSON(), isNew: prefs.isNew };
  }

  @Get('prefs/set')
  prefsSet(@Session('prefs') prefs: Session, @Query('data') data: string) {
    for (const [key, value] of Object.entries(JSON.parse(data) as Record<string, unknown>)) prefs.set(key, value);
    return { ok: true };
  }

  @Get('prefs/try-set')
  prefsTrySet(@Session('prefs') prefs: Session, @Query('key') key: string, @Query('value') value: string) {
    return attempt(() => prefs.set(key, JSON.parse(value)));
  }

  @Get('prefs/try-delete')
  prefsTryDelete(@Session('prefs') prefs: Session, @Query('key') key: string) {
    return attempt(() => prefs.delete(key));
  }

  @Get('prefs/flash')
  prefsFlash(@Flash('prefs') flash: Flash) {
    flash.add('info', 'saved');
    return { ok: true };
  }

  @Get('prefs/messages')
  prefsMessages(@Flash('prefs') flash: Flash) {
    return { messages: flash.all() };
  }
}

function attempt(change: () => void): { ok: true } | { error: string; path: string } {
  try {
    change();
    return { ok: true };
  } catch (error) {
    if (error instanceof SessionValidationError) return { error: error.name, path: error.path };
    throw error;
  }
}

/** Where the sessions live, and how a test reaches around the app to the stored data. */
interface StoreKind {
  name: string;
  create(tag: string): AnySessionStore;
  /** The stored data (key → JSON text) of the session behind the jar's cookie. */
  data(store: AnySessionStore, cookieName: string, jar: CookieJar, signer: SessionIdSigner): Promise<Record<string, string> | undefined>;
  /** Replaces the stored data of the session behind the jar's cookie, as a deploy with another schema would find it. */
  overwrite(store: AnySessionStore, cookieName: string, jar: CookieJar, signer: SessionIdSigner, data: Record<string, string>): Promise<void>;
}

async function serverRecord(store: AnySessionStore, cookieName: string, jar: CookieJar, signer: SessionIdSigner): Promise<[string, SessionRecord | undefined]> {
  const [id] = signer.unsign(jar.get(cookieName)!)!;
  return [id, await (store as SessionStore).get(id)];
}

const serverSide = (name: string, create: (tag: string) => AnySessionStore): StoreKind => ({
  name,
  create,
  async data(store, cookieName, jar, signer) {
    return (await serverRecord(store, cookieName, jar, signer))[1]?.data;
  },
  async overwrite(store, cookieName, jar, signer, data) {
    const [id, record] = await serverRecord(store, cookieName, jar, signer);
    await (store as SessionStore).set(id, { ...record!, data });
  },
});

let redisClient: Redis | undefined;
const kinds: StoreKind[] = [
  serverSide('MemoryStore', () => new MemoryStore({ sweepInterval: 0 })),
  serverSide('RedisStore', (tag) => new RedisStore({ client: redisClient!, prefix: `test:${RUN}:${randomUUID()}:${tag}:` })),
  {
    name: 'CookieStore',
    create: (tag) => new CookieStore({ secret: tag === 'prefs' ? PREFS_COOKIE_KEY : COOKIE_KEY }),
    async data(store, cookieName, jar) {
      return (store as ClientSessionStore).open(jar.get(cookieName)!)?.record.data;
    },
    async overwrite(store, cookieName, jar, _signer, data) {
      const cookie = store as ClientSessionStore;
      const opened = cookie.open(jar.get(cookieName)!)!;
      jar.set(cookieName, cookie.seal(opened.id, { ...opened.record, data }));
    },
  },
];

/** What the Logger was asked to warn about, as text. */
function captureWarnings(): string[] {
  const lines: string[] = [];
  vi.spyOn(Logger.prototype, 'warn').mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(' ')));
  vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  return lines;
}

beforeAll(async () => {
  redisClient = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await redisClient.ping();
});
afterAll(async () => {
  const client = redisClient!;
  const keys = await client.keys(`test:${RUN}:*`);
  if (keys.length > 0) await client.del(...keys);
  await client.quit();
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe.each(libraries)('a $name schema', (library) => {
  describe.each(kinds)('on the $name', (kind) => {
    describe.each(platforms)('on $name', (platform) => {
      let t: TestApp;
      let store: AnySessionStore;
      let prefsStore: AnySessionStore;
      const signer = new SessionIdSigner([SECRET]);
      const prefsSigner = new SessionIdSigner([SECRET], 'prefs');

      beforeAll(async () => {
        store = kind.create('default');
        prefsStore = kind.create('prefs');
        @Module({
          imports: [
            SessionModule.forRoot({ secret: SECRET, store, schema: library.schema, sessions: { prefs: { store: prefsStore, schema: library.prefs } } }),
          ],
          controllers: [SchemaController],
        })
        class SchemaModule {}
        t = await platform.create(SchemaModule);
      });
      afterAll(async () => {
        await t?.close();
      });

      const get = async (path: string, jar: CookieJar) => {
        const header = jar.header();
        const response = await (header === '' ? t.http().get(path) : t.http().get(path).set('Cookie', header));
        jar.take(response);
        return response;
      };
      const set = (data: unknown, jar: CookieJar) => get(`/set?data=${encodeURIComponent(JSON.stringify(data))}`, jar);
      const trySet = (key: string, value: unknown, jar: CookieJar, prefix = '') =>
        get(`${prefix}/try-set?key=${encodeURIComponent(key)}&value=${encodeURIComponent(JSON.stringify(value))}`, jar);

      it('data that matches is stored exactly as written and read back untouched (no default filled in)', async () => {
        const jar = new CookieJar();
        const cart = { items: [{ sku: 'a-1', qty: 2 }] };
        expect((await set({ theme: 'dark', cart, userId: 7 }, jar)).status).toBe(200);
        expect(await kind.data(store, 'sid', jar, signer)).toEqual({ theme: '"dark"', cart: JSON.stringify(cart), userId: '7' });
        const read = await get('/all', jar);
        expect(read.body).toMatchObject({ data: { theme: 'dark', cart, userId: 7 }, isNew: false });
        expect(read.body.data).not.toHaveProperty('visits');
      });

      it('set() of a value that does not match throws SessionValidationError naming the path, and nothing is written', async () => {
        const jar = new CookieJar();
        await set({ visits: 1, theme: 'light' }, jar);
        const stored = await kind.data(store, 'sid', jar, signer);

        const wrongType = await trySet('visits', SECRET_VALUE, jar);
        expect(wrongType.body).toEqual({ error: 'SessionValidationError', path: 'visits' });
        expect(setCookies(wrongType.headers)).toEqual([]);
        expect((await trySet('theme', 'blue', jar)).body).toEqual({ error: 'SessionValidationError', path: 'theme' });
        expect((await trySet('cart', { items: [{ sku: 'a', qty: 'x' }] }, jar)).body).toEqual({ error: 'SessionValidationError', path: 'cart.items[0].qty' });
        // A key the strict schema does not know.
        expect((await trySet('other', 1, jar)).body).toEqual({ error: 'SessionValidationError', path: 'other' });

        expect(await kind.data(store, 'sid', jar, signer)).toEqual(stored);
        expect((await get('/all', jar)).body.data).toEqual({ visits: 1, theme: 'light' });
      });

      it('the same error not caught by the handler is a 500, and the next request sees the old data', async () => {
        const jar = new CookieJar();
        await set({ visits: 3 }, jar);
        captureWarnings();
        const refused = await set({ visits: 'lots' }, jar);
        expect(refused.status).toBe(500);
        expect(setCookies(refused.headers)).toEqual([]);
        expect((await get('/all', jar)).body).toMatchObject({ data: { visits: 3 }, isNew: false });
      });

      it('a value changed in place (after get() or set()) so that it no longer matches is refused at the save: a 500, nothing written', async () => {
        const jar = new CookieJar();
        const cart = { items: [{ sku: 'a-1', qty: 2 }] };
        await set({ cart }, jar);
        const stored = await kind.data(store, 'sid', jar, signer);
        captureWarnings();
        for (const path of ['/mutate', '/set-then-mutate']) {
          const refused = await get(path, jar);
          expect(refused.status).toBe(500);
          expect(setCookies(refused.headers)).toEqual([]);
          expect(await kind.data(store, 'sid', jar, signer)).toEqual(stored);
        }
        expect((await get('/all', jar)).body).toMatchObject({ data: { cart }, isNew: false });
      });

      it('a stored session that does not match reads as an empty session, logged once per cause without any value', async () => {
        const warnings = captureWarnings();
        const jar = new CookieJar();
        await set({ visits: 2 }, jar);
        await kind.overwrite(store, 'sid', jar, signer, { visits: JSON.stringify(SECRET_VALUE), theme: '"dark"' });

        const read = await get('/all', jar);
        expect(read.status).toBe(200);
        expect(read.body).toEqual({ data: {}, isNew: true, id: null });
        const logged = warnings.filter((line) => line.includes('does not match the schema'));
        expect(logged).toHaveLength(1);
        expect(logged[0]).toContain("Session 'default'");
        expect(logged[0]).toContain('at visits');
        for (const line of warnings) {
          expect(line).not.toContain(SECRET_VALUE);
          expect(line).not.toContain('4111');
          expect(line).not.toContain(jar.get('sid'));
        }
        if (kind.name !== 'CookieStore') {
          // Left in the store to expire: a rollback to a schema it matches finds it again.
          expect(await kind.data(store, 'sid', jar, signer)).toEqual({ visits: JSON.stringify(SECRET_VALUE), theme: '"dark"' });
        }

        // The same cause with another value: not logged again.
        const other = new CookieJar();
        await set({ visits: 5 }, other);
        await kind.overwrite(store, 'sid', other, signer, { visits: '"another value"' });
        expect((await get('/all', other)).body).toMatchObject({ data: {}, isNew: true });
        expect(warnings.filter((line) => line.includes('does not match the schema'))).toHaveLength(1);

        // Another cause is.
        const third = new CookieJar();
        await set({ visits: 5 }, third);
        await kind.overwrite(store, 'sid', third, signer, { theme: '"blue"' });
        expect((await get('/all', third)).body).toMatchObject({ data: {}, isNew: true });
        const all = warnings.filter((line) => line.includes('does not match the schema'));
        expect(all).toHaveLength(2);
        expect(all[1]).toContain('at theme');
        expect(all[1]).not.toContain('blue');
      });

      it('a fresh session replaces the one that did not match once something is written', async () => {
        captureWarnings();
        const jar = new CookieJar();
        await set({ visits: 2 }, jar);
        const oldCookie = jar.get('sid');
        await kind.overwrite(store, 'sid', jar, signer, { visits: '"two"' });
        const written = await set({ visits: 1 }, jar);
        expect(written.status).toBe(200);
        expect(jar.get('sid')).not.toBe(oldCookie);
        expect((await get('/all', jar)).body).toMatchObject({ data: { visits: 1 }, isNew: false });
      });

      it("keys starting with NUL (the library's own) are not the schema's business", async () => {
        const jar = new CookieJar();
        await set({ visits: 4 }, jar);
        await kind.overwrite(store, 'sid', jar, signer, { visits: '4', '\u0000internal': '"not in the schema"' });
        const read = await get('/all', jar);
        expect(read.body.isNew).toBe(false);
        expect(read.body.data.visits).toBe(4);
      });

      it('the CSRF secret kept in the session is not checked: a session holding only it is stored and read back', async () => {
        const jar = new CookieJar();
        const form = await get('/form', jar);
        expect(form.status).toBe(200);
        expect(typeof form.body.csrf).toBe('string');
        expect(Object.keys((await kind.data(store, 'sid', jar, signer))!)).toEqual([CSRF_SECRET_KEY]);
        expect((await get('/all', jar)).body).toMatchObject({ data: {}, isNew: false });
        // Saved beside the user's data, which still has to match.
        expect((await trySet('visits', 5, jar)).body).toEqual({ ok: true });
        expect((await trySet('visits', 'five', jar)).body).toEqual({ error: 'SessionValidationError', path: 'visits' });
        expect(Object.keys((await kind.data(store, 'sid', jar, signer))!).sort()).toEqual([CSRF_SECRET_KEY, 'visits']);
        expect((await get('/all', jar)).body).toMatchObject({ data: { visits: 5 }, isNew: false });
      });

      it('a named session has its own schema: required keys are checked when it is saved, flash messages are not checked', async () => {
        const jar = new CookieJar();
        // The default schema (strict) would refuse these keys; the prefs schema takes them.
        expect((await trySet('lang', 'fr', jar, '/prefs')).body).toEqual({ ok: true });
        expect((await trySet('visits', 'many', jar, '/prefs')).body).toEqual({ ok: true });
        expect((await get('/prefs', jar)).body).toEqual({ data: { lang: 'fr', visits: 'many' }, isNew: false });
        expect((await trySet('lang', 'de', jar, '/prefs')).body).toEqual({ error: 'SessionValidationError', path: 'lang' });
        expect((await trySet('lang', 'de', jar)).body).toEqual({ error: 'SessionValidationError', path: 'lang' });
        expect(await kind.data(prefsStore, 'prefs', jar, prefsSigner)).toEqual({ lang: '"fr"', visits: '"many"' });

        // A new prefs session without its required key cannot be saved.
        captureWarnings();
        const fresh = new CookieJar();
        expect((await trySet('tz', 'UTC', fresh, '/prefs')).status).toBe(500);
        expect(fresh.get('prefs')).toBeUndefined();
        expect((await get('/prefs', fresh)).body).toEqual({ data: {}, isNew: true });
        expect((await get(`/prefs/set?data=${encodeURIComponent(JSON.stringify({ tz: 'UTC', lang: 'en' }))}`, fresh)).status).toBe(200);
        expect((await get('/prefs', fresh)).body).toEqual({ data: { tz: 'UTC', lang: 'en' }, isNew: false });

        // Flash messages in a session with no data at all: stored and read back.
        const flashOnly = new CookieJar();
        expect((await get('/prefs/flash', flashOnly)).status).toBe(200);
        expect((await get('/prefs/messages', flashOnly)).body).toEqual({ messages: { info: ['saved'] } });
      });

      it('delete() of a required key is refused; of an optional one, accepted', async () => {
        const jar = new CookieJar();
        await get(`/prefs/set?data=${encodeURIComponent(JSON.stringify({ tz: 'UTC', lang: 'en' }))}`, jar);
        await set({ visits: 1, theme: 'dark' }, jar);
        expect((await get('/prefs/try-delete?key=lang', jar)).body).toEqual({ error: 'SessionValidationError', path: 'lang' });
        expect((await get('/prefs/try-delete?key=tz', jar)).body).toEqual({ ok: true });
        expect((await get('/prefs', jar)).body.data).toEqual({ lang: 'en' });
        expect((await get('/try-delete?key=theme', jar)).body).toEqual({ ok: true });
        expect((await get('/all', jar)).body.data).toEqual({ visits: 1 });
      });
    });
  });
});

// A schema that answers with a promise: awaited when a session is read and before it is saved.
const asyncSchema = z.object({
  userId: z
    .number()
    .optional()
    .refine(async (id) => id === undefined || id > 0, 'must be positive'),
});

@Controller()
class AsyncController {
  @Get('all')
  all(@Session() session: Session) {
    return { data: session.toJSON(), isNew: session.isNew };
  }

  @Get('set')
  set(@Session() session: Session, @Query('id') id: string) {
    session.set('userId', Number(id));
    return { ok: true };
  }
}

describe.each([kinds[0], kinds[2]])('an async schema on the $name', (kind) => {
  describe.each(platforms)('on $name', (platform) => {
    let t: TestApp;
    let store: AnySessionStore;
    const signer = new SessionIdSigner([SECRET]);
    beforeAll(async () => {
      store = kind.create('default');
      @Module({ imports: [SessionModule.forRoot({ secret: SECRET, store, schema: asyncSchema })], controllers: [AsyncController] })
      class AsyncModule {}
      t = await platform.create(AsyncModule);
    });
    afterAll(async () => {
      await t?.close();
    });
    let warnings: string[];
    beforeEach(() => {
      warnings = captureWarnings();
    });

    const get = async (path: string, jar: CookieJar) => {
      const header = jar.header();
      const response = await (header === '' ? t.http().get(path) : t.http().get(path).set('Cookie', header));
      jar.take(response);
      return response;
    };

    it('a matching value is saved and read back; one that does not is refused at the save (a 500, nothing written)', async () => {
      const jar = new CookieJar();
      expect((await get('/set?id=5', jar)).status).toBe(200);
      expect((await get('/all', jar)).body).toEqual({ data: { userId: 5 }, isNew: false });
      const refused = await get('/set?id=-1', jar);
      expect(refused.status).toBe(500);
      expect(setCookies(refused.headers)).toEqual([]);
      expect((await get('/all', jar)).body).toEqual({ data: { userId: 5 }, isNew: false });
    });

    it('a stored session that does not match reads as no session', async () => {
      const jar = new CookieJar();
      await get('/set?id=5', jar);
      await kind.overwrite(store, 'sid', jar, signer, { userId: '-3' });
      expect((await get('/all', jar)).body).toEqual({ data: {}, isNew: true });
      expect(warnings.some((line) => line.includes('at userId: must be positive'))).toBe(true);
    });
  });
});
