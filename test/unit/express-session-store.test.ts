import { RedisStore as ConnectRedisStore } from 'connect-redis';
import connectPgSimple from 'connect-pg-simple';
import session from 'express-session';
import createMemoryStore from 'memorystore';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MemoryStore as NestMemoryStore, SessionConfigError, SessionStoreError } from '../../src/index.js';
import { checked } from '../../src/lifecycle/session-reader.js';
import { resolveSessions } from '../../src/session/session-definition.js';
import { DEFAULT_SESSION } from '../../src/session/session.constants.js';
import { fromExpressSessionStore, type ExpressSessionCompatibleStore } from '../../src/migration/express-session.js';
import { storeIdOf } from '../../src/migration/express-session-store.record.js';
import type { SessionPatch, SessionRecord } from '../../src/stores/session-store.interface.js';

const MemoryStore = createMemoryStore(session);
const LATER = 10 * 60_000;
const ID = 'AbC-_0123456789abcdefghijklmnopqrstuvwxyzAB'; // the engine's shape: 43 characters of base64url
const record = (data: Record<string, unknown> = { visits: 1 }, expiresAt = Date.now() + LATER): SessionRecord => ({
  data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, JSON.stringify(value)])),
  meta: { createdAt: Date.now() },
  expiresAt,
});
const patch = (set: Record<string, unknown>): SessionPatch => ({
  set: Object.fromEntries(Object.entries(set).map(([key, value]) => [key, JSON.stringify(value)])),
  unset: [],
  flash: { set: {}, unset: [] },
  expiresAt: Date.now() + LATER,
});
const defaultSession = resolveSessions({ secret: 'a-test-secret-that-is-long-enough-0123456789' }).definitions.get(DEFAULT_SESSION)!;

type Answer = 'sync' | 'later' | 'never';

/**
 * A callback store over a Map of JSON text, as express-session stores are written: it records each
 * call, answers synchronously, on a later turn, or never, and `lag` keeps serving a destroyed session
 * (a replica behind its primary).
 */
class CallbackStore implements ExpressSessionCompatibleStore {
  readonly sessions = new Map<string, string>();
  readonly calls: string[] = [];
  answer: Answer = 'later';
  lag = false;
  private readonly destroyed = new Map<string, string>();

  get(sid: string, callback: (error: unknown, value?: unknown) => void): void {
    this.calls.push(`get ${sid}`);
    const text = this.sessions.get(sid) ?? (this.lag ? this.destroyed.get(sid) : undefined);
    this.reply(() => callback(null, text === undefined ? null : JSON.parse(text)));
  }

  set(sid: string, value: unknown, callback?: (error?: unknown) => void): void {
    this.calls.push(`set ${sid}`);
    this.sessions.set(sid, JSON.stringify(value));
    this.reply(() => callback?.(null));
  }

  destroy(sid: string, callback?: (error?: unknown) => void): void {
    this.calls.push(`destroy ${sid}`);
    const text = this.sessions.get(sid);
    if (text !== undefined) this.destroyed.set(sid, text);
    this.sessions.delete(sid);
    this.reply(() => callback?.(null));
  }

  written(sid: string): Record<string, any> {
    return JSON.parse(this.sessions.get(sid)!);
  }

  private reply(answer: () => void): void {
    if (this.answer === 'sync') answer();
    else if (this.answer === 'later') setImmediate(answer);
  }
}

/** A node-redis client over a Map: enough for connect-redis's get, set and destroy. */
function redisClient() {
  const keys = new Map<string, string>();
  return {
    keys,
    get: async (key: string) => keys.get(key) ?? null,
    set: async (key: string, value: string) => void keys.set(key, value),
    del: async (list: string[]) => list.forEach((key) => keys.delete(key)),
  };
}

describe('fromExpressSessionStore: the argument', () => {
  it.each([undefined, null, 42, 'redis://localhost', true])('refuses %s, saying what to pass', (value) => {
    expect(() => fromExpressSessionStore(value as never)).toThrow(SessionConfigError);
    expect(() => fromExpressSessionStore(value as never)).toThrow(/pass an express-session store instance, such as fromExpressSessionStore\(new RedisStore\(\{ client \}\)\)/);
  });

  it('refuses a class or a factory instead of a store made with new', () => {
    expect(() => fromExpressSessionStore(MemoryStore as never)).toThrow(/got a function; .*the store made with new, not its class or the factory/);
    expect(() => fromExpressSessionStore(createMemoryStore as never)).toThrow(SessionConfigError);
  });

  it('names the methods a store lacks', () => {
    expect(() => fromExpressSessionStore({ get() {}, set() {} } as never)).toThrow(/has no destroy\(\); .*get\(sid, callback\), set\(sid, session, callback\) and destroy\(sid, callback\)/);
    expect(() => fromExpressSessionStore({ get: 1, set() {}, destroy: 'x' } as never)).toThrow(/has no get\(\), destroy\(\)/);
  });

  it("refuses a nest-sessions store: it needs no adapter", () => {
    expect(() => fromExpressSessionStore(new NestMemoryStore({ sweepInterval: 0 }) as never)).toThrow(/MemoryStore is already a nest-sessions store \(it has patch\(\)\); give it to SessionModule.forRoot\(\{ store \}\) as it is/);
  });

  it('checks its options', () => {
    const store = new CallbackStore();
    expect(() => fromExpressSessionStore(store, null as never)).toThrow(/options must be an object/);
    expect(() => fromExpressSessionStore(store, { listByUser: 'all' as never })).toThrow(/listByUser must be 'scan'/);
    expect(() => fromExpressSessionStore(store, { listByUser: 'scan' })).toThrow(/this store \(CallbackStore\) has none; leave listByUser out/);
    expect(() => fromExpressSessionStore(store, { closeStore: 'yes' as never })).toThrow(/closeStore must be true/);
    expect(() => fromExpressSessionStore(store, { closeStore: true })).toThrow(/calls the store's close\(\), and this store \(CallbackStore\) has none/);
    for (const timeout of [0, -1, 1.5, '5000', 2 ** 31]) {
      expect(() => fromExpressSessionStore(store, { timeout: timeout as never })).toThrow(/timeout must be a whole number of ms/);
    }
  });

  it('takes the stores of the registry as they are typed, without any I/O', () => {
    const pool = new pg.Pool();
    const PgStore = connectPgSimple(session);
    const stores = [
      fromExpressSessionStore(new session.MemoryStore()),
      fromExpressSessionStore(new MemoryStore({}), { listByUser: 'scan' }),
      fromExpressSessionStore(new ConnectRedisStore({ client: redisClient() }), { listByUser: 'scan', timeout: 2000 }),
      fromExpressSessionStore(new PgStore({ pool, pruneSessionInterval: false }), { closeStore: true }),
    ];
    expect(stores.every((store) => typeof store.patch === 'function')).toBe(true);
    void pool.end();
  });
});

describe('fromExpressSessionStore: callbacks and promises', () => {
  it.each<Answer>(['sync', 'later'])('works with a store that calls back %s', async (answer) => {
    const backing = new CallbackStore();
    backing.answer = answer;
    const store = fromExpressSessionStore(backing);
    await store.set(ID, record({ visits: 1 }));
    await store.patch(ID, patch({ visits: 2 }));
    expect((await store.get(ID))?.data.visits).toBe('2');
    await store.destroy(ID);
    expect(await store.get(ID)).toBeUndefined();
  });

  it("works with connect-redis, whose methods call back and return a promise", async () => {
    const client = redisClient();
    const store = fromExpressSessionStore(new ConnectRedisStore({ client, prefix: 'p:' }));
    await store.set(ID, record({ visits: 1 }));
    expect([...client.keys.keys()]).toEqual([`p:${ID}`]);
    expect((await store.get(ID))?.data.visits).toBe('1');
    await store.destroy(ID);
    expect(client.keys.size).toBe(0);
  });

  it('takes the first answer when a store calls back twice', async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore({
      get: (sid, callback) => backing.get(sid, (error, value) => {
        callback(error, value);
        callback(new Error('a second answer'));
      }),
      set: (sid, value, callback) => backing.set(sid, value, callback),
      destroy: (sid, callback) => backing.destroy(sid, callback),
    });
    await store.set(ID, record());
    expect(await store.get(ID)).toBeDefined();
  });

  it('turns a callback error, a throw and a rejected promise into a SessionStoreError naming the store and the call', async () => {
    const cause = new Error('connection refused');
    class FailingStore implements ExpressSessionCompatibleStore {
      get(_sid: string, callback: (error: unknown) => void) {
        setImmediate(() => callback(cause));
      }
      set(): void {
        throw new Error('cannot serialise');
      }
      destroy(): Promise<void> {
        return Promise.reject(new Error('rejected'));
      }
    }
    const store = fromExpressSessionStore(new FailingStore());
    const read = store.get(ID);
    await expect(read).rejects.toBeInstanceOf(SessionStoreError);
    await expect(read).rejects.toThrow('fromExpressSessionStore(FailingStore): get failed: connection refused');
    await expect(read).rejects.toHaveProperty('cause', cause);
    await expect(store.set(ID, record())).rejects.toThrow('fromExpressSessionStore(FailingStore): set failed: cannot serialise');
    await expect(store.destroy(ID)).rejects.toThrow('fromExpressSessionStore(FailingStore): destroy failed: rejected');
    await expect(fromExpressSessionStore({ get: (_sid, cb) => cb('text error'), set() {}, destroy() {} }).get(ID)).rejects.toThrow('get failed: text error');
  });

  it("never takes a promise's value for the answer: stores give theirs to the callback", async () => {
    const store = fromExpressSessionStore({ get: async () => ({ nestSessions: '{}' }), set() {}, destroy() {} }, { timeout: 50 });
    await expect(store.get(ID)).rejects.toThrow('get failed: no callback within 50 ms (option timeout)');
  });

  it('fails a call whose callback never comes after `timeout`, and lets the next write of that session go ahead', async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore(backing, { timeout: 50 });
    await store.set(ID, record());
    backing.answer = 'never';
    const hung = store.patch(ID, patch({ visits: 2 }));
    await expect(hung).rejects.toThrow(/get failed: no callback within 50 ms/);
    backing.answer = 'later';
    await store.destroy(ID);
    expect(backing.sessions.size).toBe(0);
  });
});

describe('fromExpressSessionStore: what is written and read back', () => {
  it("writes an express-session session whose cookie ends at the record's expiry, the record inside as JSON text", async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore(backing);
    const expiresAt = Date.now() + 3_600_000;
    const awkward: SessionRecord = { data: { 'a\u0000\ud800': '"x\\ud83dy"' }, meta: { createdAt: 1, flash: { info: ['\u0000', '\udc00'] }, session: 'späť' }, expiresAt };
    await store.set(ID, awkward);
    const written = backing.written(ID);
    expect(Object.keys(written)).toEqual(['cookie', 'nestSessions']);
    expect(written.cookie).toEqual({ originalMaxAge: expect.any(Number), maxAge: expect.any(Number), expires: new Date(expiresAt).toISOString(), httpOnly: true, path: '/' });
    expect(written.cookie.maxAge).toBeGreaterThan(3_599_000);
    expect(written.cookie.maxAge).toBeLessThanOrEqual(3_600_000);
    expect(typeof written.nestSessions).toBe('string');
    // Text any JSON back-end keeps (PostgreSQL's json refuses a lone surrogate, jsonb also a NUL): the record's own are escaped inside one string.
    expect(written.nestSessions.isWellFormed()).toBe(true);
    expect(written.nestSessions).not.toContain('\u0000');
    expect(await store.get(ID)).toEqual(awkward);
  });

  it('reads back records that pass the engine\'s own check', async () => {
    const store = fromExpressSessionStore(new MemoryStore({}));
    const rec: SessionRecord = { ...record(), meta: { createdAt: 5, maxAge: 60_000, flash: { info: ['hi'] }, user: { id: '42', lastSeenAt: 7 } } };
    await store.set(ID, rec);
    const read = await store.get(ID);
    expect(read).toEqual(rec);
    expect(checked(read, defaultSession)).toBe(read);
  });

  it("reads anything else as no session: another app's express-session session, garbage, an expired or mixed-up record", async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore(backing);
    const good = () => JSON.parse(JSON.stringify({ v: 1, id: ID, data: { a: '1' }, meta: { createdAt: 1 }, expiresAt: Date.now() + LATER })) as Record<string, any>;
    const variants: unknown[] = [
      null, 'text', [], {},
      { cookie: { originalMaxAge: null, expires: null }, userId: 42 },
      { nestSessions: 'not json' }, { nestSessions: 42 }, { nestSessions: '[]' },
      { nestSessions: JSON.stringify({ ...good(), v: 2 }) },
      { nestSessions: JSON.stringify({ ...good(), id: 'another id' }) },
      { nestSessions: JSON.stringify({ ...good(), expiresAt: Date.now() - 1 }) },
      { nestSessions: JSON.stringify({ ...good(), expiresAt: '2999-01-01' }) },
      { nestSessions: JSON.stringify({ ...good(), data: { a: 1 } }) },
      { nestSessions: JSON.stringify({ ...good(), meta: { createdAt: 'yesterday' } }) },
      { nestSessions: JSON.stringify({ ...good(), meta: { createdAt: 1, maxAge: 0 } }) },
      { nestSessions: JSON.stringify({ ...good(), meta: { createdAt: 1, flash: { info: 'not a list' } } }) },
      { nestSessions: JSON.stringify({ ...good(), meta: { createdAt: 1, session: 7 } }) },
      { nestSessions: JSON.stringify({ ...good(), meta: { createdAt: 1, user: { id: 42 } } }) },
    ];
    for (const value of variants) {
      backing.sessions.set(ID, JSON.stringify(value));
      expect(await store.get(ID), JSON.stringify(value)).toBeUndefined();
      await store.patch(ID, patch({ b: 2 }));
      await store.touch(ID, Date.now() + LATER);
      expect(backing.sessions.get(ID), 'a patch or touch rewrote what it cannot read').toBe(JSON.stringify(value));
    }
    backing.sessions.set(ID, JSON.stringify({ nestSessions: JSON.stringify(good()) }));
    expect(await store.get(ID)).toEqual({ data: { a: '1' }, meta: { createdAt: 1 }, expiresAt: good().expiresAt });
  });

  it("gives the store the engine's ids as they are, and any other id encoded so that no two ids meet", () => {
    expect(storeIdOf(ID)).toBe(ID);
    const others = ['../x', '', 'a\ud800', 'a\ud801', 'a\ufffd', 'a/b', 'a\u0000', '~', 'séssion'];
    const encoded = others.map(storeIdOf);
    expect(new Set(encoded).size).toBe(others.length);
    for (const each of encoded) expect(each).toMatch(/^~[A-Za-z0-9_-]+$/);
  });

  it('deletes instead of writing a record that has already expired', async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore(backing);
    await store.set(ID, record());
    await store.set(ID, record({}, Date.now() - 1000));
    expect(backing.calls).toEqual([`set ${ID}`, `destroy ${ID}`]);
  });
});

describe('fromExpressSessionStore: a destroyed session never comes back', () => {
  it('patch() and touch() of an unknown id read and write nothing more', async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore(backing);
    await store.patch(ID, patch({ a: 1 }));
    await store.touch(ID, Date.now() + LATER);
    expect(backing.calls).toEqual([`get ${ID}`, `get ${ID}`]);
    expect(backing.sessions.size).toBe(0);
  });

  it('concurrent patches of one session in this process run one after the other: none is lost', async () => {
    const backing = new CallbackStore();
    const store = fromExpressSessionStore(backing);
    await store.set(ID, record({ base: true }));
    await Promise.all(Array.from({ length: 20 }, async (_, i) => store.patch(ID, patch({ [`k${i}`]: i }))));
    expect(Object.keys((await store.get(ID))!.data).sort()).toEqual(['base', ...Array.from({ length: 20 }, (_, i) => `k${i}`)].sort());
  });

  it('after destroy(), this process neither reads nor writes that id, even from a store whose reads lag; set() starts it anew', async () => {
    const backing = new CallbackStore();
    backing.lag = true;
    const store = fromExpressSessionStore(backing);
    await store.set(ID, record({ user: 'ada' }));
    await store.destroy(ID);
    backing.calls.length = 0;
    expect(await store.get(ID)).toBeUndefined();
    await store.patch(ID, patch({ late: true }));
    await store.touch(ID, Date.now() + LATER);
    expect(backing.calls).toEqual([]);
    expect(backing.sessions.size).toBe(0);
    await store.set(ID, record({ fresh: true }));
    expect((await store.get(ID))?.data.fresh).toBe('true');
  });
});

describe('fromExpressSessionStore: close() and listByUser()', () => {
  it("leaves the store open unless closeStore: true, then calls its close() in any of its forms", async () => {
    const closed: string[] = [];
    const base = () => ({ get() {}, set() {}, destroy() {} });
    await fromExpressSessionStore({ ...base(), close: () => void closed.push('never') }).close?.();
    await fromExpressSessionStore({ ...base(), close: (callback: (error?: unknown) => void) => setImmediate(() => (closed.push('callback'), callback())) }, { closeStore: true }).close?.();
    await fromExpressSessionStore({ ...base(), close: async () => void closed.push('promise') }, { closeStore: true }).close?.();
    await fromExpressSessionStore({ ...base(), close: () => void closed.push('sync') }, { closeStore: true }).close?.();
    expect(closed).toEqual(['callback', 'promise', 'sync']);
    await expect(fromExpressSessionStore({ ...base(), close: async () => Promise.reject(new Error('pool gone')) }, { closeStore: true }).close?.()).rejects.toThrow('close failed: pool gone');
  });

  it("has no listByUser() unless asked: SessionService then says that the store cannot list a user's sessions", () => {
    expect(typeof fromExpressSessionStore(new MemoryStore({})).listByUser).toBe('undefined');
    expect(typeof fromExpressSessionStore(new MemoryStore({}), { listByUser: 'scan' }).listByUser).toBe('function');
  });

  it("with listByUser: 'scan', lists from all() answered as a list, an object by id or a Map, and skips what is not ours", async () => {
    const tied = (user: string): SessionRecord => ({ ...record(), meta: { createdAt: 1, user: { id: user } } });
    const backing = new MemoryStore({});
    const written = new Map<string, unknown>();
    const capture: ExpressSessionCompatibleStore = {
      get: (sid, callback) => backing.get(sid, callback),
      set: (sid, value, callback) => (written.set(sid, JSON.parse(JSON.stringify(value))), backing.set(sid, value, callback)),
      destroy: (sid, callback) => backing.destroy(sid, callback),
    };
    const writer = fromExpressSessionStore(capture);
    await writer.set('a1', tied('ada'));
    await writer.set('a2', tied('ada'));
    await writer.set('b1', tied('bob'));
    const foreign = { cookie: { expires: null }, userId: 'ada' };
    const answers: unknown[] = [
      [...written.values(), foreign],
      { ...Object.fromEntries(written), foreign },
      new Map([...written, ['foreign', foreign]]),
    ];
    for (const answer of answers) {
      const store = fromExpressSessionStore({ ...capture, all: (callback: (error: unknown, value?: unknown) => void) => setImmediate(() => callback(null, answer)) }, { listByUser: 'scan' });
      const listed = await store.listByUser!('ada');
      expect(listed.map((entry) => entry.id).sort()).toEqual(['a1', 'a2']);
      expect(listed[0].meta.user).toEqual({ id: 'ada' });
    }
  });
});
