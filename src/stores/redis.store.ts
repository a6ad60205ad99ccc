/**
 * `nest-sessions/redis`: `RedisStore`, sessions in Redis, through a client you give it (its package
 * is an optional peer dependency: the entry point loads without it).
 *
 * @module nest-sessions/redis
 */
import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { SessionConfigError, SessionStoreError } from '../session/session.errors.js';
import { requirePeer } from './optional-peer.js';
import { redisCommandsOf, type RedisCommands, type RedisStoreClient } from './redis-client.js';
import { decodeStoreKey, encodeStoreKey, isUserTie, type SessionMeta, type SessionPatch, type SessionRecord, type SessionStore, type UserSessionEntry } from './session-store.interface.js';

export type { IoredisClient, NodeRedisClient, RedisStoreClient } from './redis-client.js';

/** The options of `new RedisStore({ client })` or `new RedisStore({ url })`. */
export interface RedisStoreOptions {
  /**
   * A client you own: an ioredis `Redis` or `Cluster`, or a node-redis (`redis` package, 5 or 6)
   * client or cluster from `createClient()` or `createCluster()`. The store never quits it. Give
   * either `client` or `url`, not both.
   *
   * By default ioredis holds a command through 20 reconnection attempts while Redis is down, so a
   * request waits many seconds instead of answering 503. Configure your client to fail fast and keep
   * reconnecting:
   * - `Redis`: `{ maxRetriesPerRequest: 0, commandTimeout: 2000, retryStrategy: (n) => Math.min(n * 100, 1000) }`
   *   (or `enableOfflineQueue: false`, which also rejects commands sent before the first connection is up).
   * - `Cluster`: `{ enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 2000 } }`,
   *   and wait for its `'ready'` event before serving: a Cluster's own queue has no time limit while
   *   it reconnects, so without `enableOfflineQueue: false` calls wait until the cluster is back.
   * - node-redis `createClient`: `{ disableOfflineQueue: true, commandOptions: { timeout: 2000 } }`
   *   (`createCluster`: `disableOfflineQueue` under `defaults`), an `'error'` listener (node-redis
   *   throws an unheard one), and `await client.connect()` before serving: a client not connected yet
   *   fails every call. By default node-redis queues commands while it reconnects.
   */
  client?: RedisStoreClient;
  /**
   * A `redis://` or `rediss://` URL: the store creates its own client (closed by `close()`), which
   * rejects a call within about two seconds while Redis is down and reconnects on its own.
   */
  url?: string;
  /** Prepended to every session id to form the Redis key. Default `'sess:'`. */
  prefix?: string;
  /**
   * Starts the key of a user's index: `<userPrefix>\x01z:<user id>`, a sorted set of their sessions
   * (`session.setUser()`) scored by expiry (earlier versions kept a plain set at `<userPrefix><user id>`).
   * Default: `prefix` followed by `user:` (`'sess:user:'`), which no session id the library makes
   * can produce.
   */
  userPrefix?: string;
}

// Field names. Data and flash keys live under prefixes of their own, so they never collide with each
// other or with the bookkeeping fields; each key is encoded (encodeStoreKey), since Redis field names
// reach it as UTF-8 and a lone surrogate would not survive the trip.
const DATA = 'd:';
const FLASH = 'f:';
const CREATED = 'c';
const MAX_AGE = 'a';
const NAME = 'n';
const EXPIRES = 'e';
const USER = 'u';
const TIE = 't';

/** A Lua script called by its SHA, sent whole only when Redis does not know it yet (NOSCRIPT). */
class Script {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(client: RedisCommands, key: string, args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, key, args);
    } catch (err) {
      if (!String((err as Error)?.message).startsWith('NOSCRIPT')) throw err;
      return client.eval(this.lua, key, args);
    }
  }
}

// ARGV: expiresAt, then field/value pairs (meta and data). A past expiresAt makes PEXPIREAT delete the key.
const SET = new Script(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '${EXPIRES}', ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`);

// A session that is missing, or whose stored expiry is not after the app's now (ARGV[2]), expired or
// was destroyed: it must not come back.
const LIVE = `
local stored = tonumber(redis.call('HGET', KEYS[1], '${EXPIRES}'))
if stored == nil or stored <= tonumber(ARGV[2]) then return 0 end
`;

// The user the session was tied to before the change ('' for none), so that the store can move the
// session between users' sets; 0 when the session is not live.
const OLD_USER = `local old = redis.call('HGET', KEYS[1], '${USER}') or ''
`;

// ARGV: expiresAt, now, maxAge ('' unchanged, '-' removed, else the new value), count of field/value
// pairs to set, the pairs, then fields to delete. Only the named fields change.
const PATCH = new Script(`${LIVE}${OLD_USER}
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for j = i, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[j])
end
if ARGV[3] == '-' then
  redis.call('HDEL', KEYS[1], '${MAX_AGE}')
elseif ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], '${MAX_AGE}', ARGV[3])
end
redis.call('HSET', KEYS[1], '${EXPIRES}', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return old
`);

// ARGV: expiresAt, now. The stored expiry field moves with the TTL so `get` reads a consistent value.
const TOUCH = new Script(`${LIVE}${OLD_USER}
redis.call('HSET', KEYS[1], '${EXPIRES}', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return old
`);

// Deletes the session; answers the user it was tied to ('' for none).
const DESTROY = new Script(`${OLD_USER}
redis.call('DEL', KEYS[1])
return old
`);

// A user's index is a sorted set of their sessions' ids scored by each session's expiry (epoch ms), so
// that expired members can be dropped by score. Its key is not the one earlier versions wrote a plain
// set of ids under (see userKey): instances of both versions can serve side by side, each writing its
// own kind, and the old set is read and cleaned here until it expires with its own TTL.

// Keeps the index's key until its latest member expires. Every script that writes the index ends
// with it.
const EXPIRE_LAST = `
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] ~= nil then redis.call('PEXPIREAT', KEYS[1], last[2]) end
`;

// Drops the members whose session has expired by now (ARGV[2]).
const TRIM = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
${EXPIRE_LAST}`;

// On a user's index: ARGV: the session's key part, now, its expiresAt. Adds the session, or raises its
// score to its new expiry: never lowers it (GT), so an index write that lands after a later one (two
// instances writing the same session) cannot make the index forget a session that still lives; a
// session whose expiry went down keeps its member until the higher score passes (a listing checks it).
// Drops the expired members too, so the index holds no more than the user's live sessions however long
// one of them stays active. The index lives in another slot than the session: a command of its own.
const INDEX = new Script(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[1])
${TRIM}
return 1
`);

// On a user's index: ARGV: the session's key part, now. Removes the session.
const UNINDEX = new Script(`
redis.call('ZREM', KEYS[1], ARGV[1])
${TRIM}
return 1
`);

// On a user's index: ARGV: '', now. The members whose session has not expired by its score, after
// dropping the others.
const MEMBERS = new Script(`
${TRIM}
return redis.call('ZRANGE', KEYS[1], 0, -1)
`);

// On a user's index: ARGV: the members to remove (those a listing found gone or tied to someone else).
const PRUNE = new Script(`
local removed = redis.call('ZREM', KEYS[1], unpack(ARGV))
${EXPIRE_LAST}
return removed
`);

// On a user's index written by an earlier version (a plain set, which that version kept alive as long as
// its latest session): its members, or none when it is gone or holds something else.
const LEGACY_MEMBERS = new Script(`
if redis.call('TYPE', KEYS[1])['ok'] ~= 'set' then return {} end
return redis.call('SMEMBERS', KEYS[1])
`);

// On that old set: ARGV: the members to remove (a session ended, moved or found gone).
// A round trip for health checks, as a script so that every client the store accepts can send it,
// to the node that holds the store's keys.
const PING = new Script(`return redis.call('PING')`);

const LEGACY_REMOVE = new Script(`
if redis.call('TYPE', KEYS[1])['ok'] ~= 'set' then return 0 end
return redis.call('SREM', KEYS[1], unpack(ARGV))
`);

/** The fields a listing reads of each session, in the order readEntry takes them. */
const ENTRY_FIELDS = [CREATED, EXPIRES, MAX_AGE, NAME, USER, TIE];

/** How many sessions a listing reads at once (one `HMGET` each, sent together), and members a prune removes at once. */
const CHUNK = 500;

/**
 * Sessions in Redis or Redis Cluster: one hash per session (so a session lives in one slot) with a
 * field per data key (`d:<key>`: the value's JSON text), a field per flash key (`f:<key>`: the
 * list's JSON text), `c` (createdAt), `a` (maxAge), `n` (the session name, JSON) and `e` (expiresAt);
 * expiry kept by Redis itself (`PEXPIREAT`), so nothing needs sweeping. `patch` is one script that
 * writes only the fields it names, so concurrent requests never undo each other, and never
 * resurrects a destroyed or expired session.
 *
 * ```ts
 * new RedisStore({ client: new Redis(process.env.REDIS_URL) })
 * new RedisStore({ client: await createClient({ url: process.env.REDIS_URL }).connect() }) // node-redis
 * new RedisStore({ url: 'redis://127.0.0.1:6379', prefix: 'myapp:sess:' })
 * ```
 */
export class RedisStore implements SessionStore {
  private readonly client: RedisCommands;
  private readonly owned: Redis | undefined;
  private readonly prefix: string;
  private readonly userPrefix: string;
  private closed = false;

  constructor(options: RedisStoreOptions) {
    if (options === null || typeof options !== 'object') {
      throw new SessionConfigError('RedisStore: pass an options object with `client` (an ioredis Redis or Cluster, or a node-redis client or cluster) or `url`.');
    }
    const { client, url, prefix = 'sess:', userPrefix = `${typeof prefix === 'string' ? prefix : ''}user:` } = options;
    if (client !== undefined && url !== undefined) {
      throw new SessionConfigError('RedisStore: give either `client` or `url`, not both.');
    }
    if (client === undefined && url === undefined) {
      throw new SessionConfigError('RedisStore: `client` or `url` is required (an ioredis Redis/Cluster, a node-redis createClient()/createCluster(), or a redis:// URL).');
    }
    if (typeof prefix !== 'string') {
      throw new SessionConfigError('RedisStore: `prefix` must be a string, such as "sess:".');
    }
    if (typeof userPrefix !== 'string' || userPrefix === prefix) {
      throw new SessionConfigError('RedisStore: `userPrefix` must be a string other than `prefix`, such as "sess:user:".');
    }
    this.prefix = prefix;
    this.userPrefix = userPrefix;
    if (client !== undefined) {
      const commands = redisCommandsOf(client);
      if (commands === undefined) {
        throw new SessionConfigError('RedisStore: `client` must be an ioredis Redis or Cluster instance, or a node-redis client or cluster (createClient() or createCluster() of the `redis` package).');
      }
      this.client = commands;
      return;
    }
    this.owned = createOwnClient(url);
    this.client = redisCommandsOf(this.owned)!;
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const hash = await this.call('get', () => this.client.hgetall(this.key(id)));
    const expiresAt = Number(hash[EXPIRES]);
    // Redis expires the key itself; this also hides a session the app clock already sees as expired.
    if (!(expiresAt > Date.now())) return undefined;
    return readRecord(hash, expiresAt);
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    const { meta } = record;
    const args: (string | number)[] = [Math.floor(record.expiresAt), CREATED, JSON.stringify(meta.createdAt)];
    if (meta.maxAge !== undefined) args.push(MAX_AGE, JSON.stringify(meta.maxAge));
    if (meta.session !== undefined) args.push(NAME, JSON.stringify(meta.session));
    if (meta.user !== undefined) args.push(USER, encodeStoreKey(meta.user.id), TIE, JSON.stringify(meta.user));
    if (meta.flash !== undefined) for (const key of Object.keys(meta.flash)) args.push(FLASH + encodeStoreKey(key), JSON.stringify(meta.flash[key]));
    for (const key of Object.keys(record.data)) args.push(DATA + encodeStoreKey(key), record.data[key]);
    await this.call('set', () => SET.run(this.client, this.key(id), args));
    // A set replacing a session tied to another user leaves an id in that user's index: dropped when
    // listed, or once its score passes.
    if (meta.user !== undefined) await this.index(meta.user.id, id, record.expiresAt);
  }

  async patch(id: string, patch: SessionPatch): Promise<void> {
    const { set, unset, flash, maxAge } = patch;
    const maxAgeArg = maxAge === undefined ? '' : maxAge === null ? '-' : JSON.stringify(maxAge);
    const setKeys = Object.keys(set);
    const flashKeys = Object.keys(flash.set);
    const user = patch.user;
    const pairs = setKeys.length + flashKeys.length + (user ? 2 : 0);
    const args: (string | number)[] = [Math.floor(patch.expiresAt), Date.now(), maxAgeArg, pairs];
    for (const key of setKeys) args.push(DATA + encodeStoreKey(key), set[key]);
    for (const key of flashKeys) args.push(FLASH + encodeStoreKey(key), JSON.stringify(flash.set[key]));
    if (user) args.push(USER, encodeStoreKey(user.id), TIE, JSON.stringify(user));
    for (const key of unset) args.push(DATA + encodeStoreKey(key));
    for (const key of flash.unset) args.push(FLASH + encodeStoreKey(key));
    if (user === null) args.push(USER, TIE);
    const old = await this.call('patch', () => PATCH.run(this.client, this.key(id), args));
    if (typeof old !== 'string') return; // not live: nothing changed
    const before = old === '' ? undefined : decodeStoreKey(old);
    await this.reindex(id, before, user === undefined ? before : user?.id, patch.expiresAt);
  }

  async touch(id: string, expiresAt: number): Promise<void> {
    const old = await this.call('touch', () => TOUCH.run(this.client, this.key(id), [Math.floor(expiresAt), Date.now()]));
    if (typeof old === 'string' && old !== '') await this.index(decodeStoreKey(old), id, expiresAt);
  }

  async destroy(id: string): Promise<void> {
    const old = await this.call('destroy', () => DESTROY.run(this.client, this.key(id), []));
    if (typeof old === 'string' && old !== '') await this.unindex(decodeStoreKey(old), id);
  }

  /**
   * The live sessions tied to `userId`: the members of the user's index whose score (expiry) has not
   * passed, then each session's fields, `CHUNK` sessions at a time (each is a key of its own, in its
   * own slot on a Cluster), with the members of the old set an earlier version may still be writing.
   * Members whose session is gone, expired or tied to someone else now are removed on the way.
   */
  async listByUser(userId: string): Promise<UserSessionEntry[]> {
    const key = this.userKey(userId);
    const legacyKey = this.legacyUserKey(userId);
    const [members, legacy] = await this.call('listByUser', () => Promise.all([MEMBERS.run(this.client, key, ['', Date.now()]), LEGACY_MEMBERS.run(this.client, legacyKey, [])]));
    const all = [...new Set([...(Array.isArray(members) ? members : []), ...(Array.isArray(legacy) ? legacy : [])] as string[])];
    const user = encodeStoreKey(userId);
    const found: UserSessionEntry[] = [];
    const stale: string[] = [];
    for (let i = 0; i < all.length; i += CHUNK) {
      const chunk = all.slice(i, i + CHUNK);
      const rows = await this.call('listByUser', () => Promise.all(chunk.map((member) => this.client.hmget(this.prefix + member, ENTRY_FIELDS))));
      const now = Date.now();
      rows.forEach((row, j) => {
        const entry = row[4] === user ? readEntry(decodeStoreKey(chunk[j]), row) : undefined;
        if (entry === undefined || !(entry.expiresAt > now) || entry.meta.user?.id !== userId) stale.push(chunk[j]);
        else found.push(entry);
      });
    }
    for (let i = 0; i < stale.length; i += CHUNK) {
      const chunk = stale.slice(i, i + CHUNK);
      await this.call('listByUser', () => Promise.all([PRUNE.run(this.client, key, chunk), LEGACY_REMOVE.run(this.client, legacyKey, chunk)]));
    }
    return found;
  }

  /** Nothing to do: Redis deletes expired sessions itself. */
  reclaim(): void {}

  /** A `PING` round trip to Redis (for health checks); rejects while Redis cannot answer. */
  async ping(): Promise<void> {
    await this.call('ping', () => PING.run(this.client, this.prefix, []));
  }

  /** Quits the client created from `url`; a client you passed in is left open. */
  async close(): Promise<void> {
    if (!this.owned || this.closed) return;
    this.closed = true;
    if (this.owned.status !== 'ready') {
      this.owned.disconnect();
      return;
    }
    try {
      await this.owned.quit();
    } catch {
      this.owned.disconnect();
    }
  }

  /** The session's Redis key; an id that UTF-8 cannot carry exactly is encoded, so two ids never share a key. */
  private key(id: string): string {
    return this.prefix + encodeStoreKey(id);
  }

  /**
   * The key of a user's index: a sorted set of their sessions' ids (encoded as in their keys) scored
   * by expiry. `\u0001z:` after the user prefix is a start no encoded user id has (encodeStoreKey puts
   * a `"` after a leading `\u0001`), so the key is never the old set's of any user (legacyUserKey).
   */
  private userKey(userId: string): string {
    return `${this.userPrefix}\u0001z:${encodeStoreKey(userId)}`;
  }

  /** Where earlier versions kept a user's index as a plain set of ids: read and cleaned, never written. */
  private legacyUserKey(userId: string): string {
    return this.userPrefix + encodeStoreKey(userId);
  }

  private async index(userId: string, id: string, expiresAt: number): Promise<void> {
    await this.call('index', () => INDEX.run(this.client, this.userKey(userId), [encodeStoreKey(id), Date.now(), Math.floor(expiresAt)]));
  }

  /** Removes the session from the user's index, and from the old set while one is there. */
  private async unindex(userId: string, id: string): Promise<void> {
    const member = encodeStoreKey(id);
    await this.call('index', () => Promise.all([UNINDEX.run(this.client, this.userKey(userId), [member, Date.now()]), LEGACY_REMOVE.run(this.client, this.legacyUserKey(userId), [member])]));
  }

  /** Moves a session from one user's index to another's after a write that re-tied it (or refreshes its score). */
  private async reindex(id: string, before: string | undefined, after: string | undefined, expiresAt: number): Promise<void> {
    const work: Promise<unknown>[] = [];
    if (before !== undefined && before !== after) work.push(this.unindex(before, id));
    if (after !== undefined) work.push(this.index(after, id, expiresAt));
    await Promise.all(work);
  }

  private async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      const problem = this.client.setupProblem();
      throw new SessionStoreError(`RedisStore: ${operation} failed: ${(err as Error)?.message ?? String(err)}${problem === undefined ? '' : ` (${problem})`}`, { cause: err });
    }
  }
}

/** A client that rejects within about two seconds while Redis is down and reconnects by itself. */
function createOwnClient(url: unknown): Redis {
  if (typeof url !== 'string' || !/^rediss?:\/\/./.test(url)) {
    throw new SessionConfigError('RedisStore: `url` must be a redis:// or rediss:// URL, such as "redis://127.0.0.1:6379".');
  }
  const { Redis: RedisClient } = requirePeer<typeof import('ioredis')>('ioredis', 'RedisStore with `url`');
  const client = new RedisClient(url, {
    lazyConnect: true, // no connection until the first call, so constructing the store does no I/O
    maxRetriesPerRequest: 0, // commands waiting for a connection fail at the next failed attempt
    commandTimeout: 2000, // bounds a call also when Redis accepts the connection but never answers
    connectTimeout: 2000,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1000), // reconnect forever, at most a second apart
  });
  const logger = new Logger('RedisStore');
  let reported = false; // one log line per outage, not one per reconnect attempt
  client.on('error', (err: Error) => {
    if (reported) return;
    reported = true;
    logger.error(`Redis connection failed, calls will fail until it is back: ${err.message}`);
  });
  client.on('ready', () => {
    if (reported) logger.log('Redis connection is back');
    reported = false;
  });
  return client;
}

/** The session in a hash this store wrote; undefined when any field is not what the store writes there. */
function readRecord(hash: Record<string, string>, expiresAt: number): SessionRecord | undefined {
  const createdAt = parse(hash[CREATED]);
  if (typeof createdAt !== 'number') return undefined;
  const meta: SessionMeta = { createdAt };
  if (hash[MAX_AGE] !== undefined) {
    const maxAge = parse(hash[MAX_AGE]);
    if (typeof maxAge !== 'number') return undefined;
    meta.maxAge = maxAge;
  }
  if (hash[NAME] !== undefined) {
    const name = parse(hash[NAME]);
    if (typeof name !== 'string') return undefined;
    meta.session = name;
  }
  if (hash[TIE] !== undefined) {
    const user = parse(hash[TIE]);
    if (!isUserTie(user)) return undefined;
    meta.user = user;
  }
  const data: Record<string, string> = {};
  let flash: Record<string, unknown[]> | undefined;
  for (const field of Object.keys(hash)) {
    if (field.startsWith(DATA)) {
      define(data, decodeStoreKey(field.slice(DATA.length)), hash[field]);
    } else if (field.startsWith(FLASH)) {
      const list = parse(hash[field]);
      if (!Array.isArray(list)) return undefined;
      define((flash ??= {}), decodeStoreKey(field.slice(FLASH.length)), list);
    }
  }
  if (flash !== undefined) meta.flash = flash;
  return { data, meta, expiresAt };
}

/** A listed session from its fields (createdAt, expiresAt, maxAge, name, user, tie), or undefined when one is not what the store writes. */
function readEntry(id: string, [created, expires, maxAge, name, , tie]: (string | null)[]): UserSessionEntry | undefined {
  const createdAt = parse(created ?? undefined);
  const expiresAt = Number(expires);
  const user = parse(tie ?? undefined);
  if (typeof createdAt !== 'number' || !Number.isFinite(expiresAt) || !isUserTie(user)) return undefined;
  const meta: SessionMeta = { createdAt, user };
  if (maxAge !== null) {
    const value = parse(maxAge);
    if (typeof value !== 'number') return undefined;
    meta.maxAge = value;
  }
  if (name !== null) {
    const value = parse(name);
    if (typeof value !== 'string') return undefined;
    meta.session = value;
  }
  return { id, meta, expiresAt };
}

/** The JSON value in `text`, or undefined when it is missing or not JSON. */
function parse(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function define<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
