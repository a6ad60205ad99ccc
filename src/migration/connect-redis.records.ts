import { migrationMarker, parseExpressSession } from './express-session-record.js';
import type { FoundRecord, FoundSession } from './session-migration.source.js';

/** What the reader needs of an ioredis `Redis` or `Cluster` client. */
export interface ExpressSessionRedisClient {
  /** Runs a Lua script on the server, as ioredis's `eval(script, numkeys, ...keysAndArgs)` does. */
  eval(script: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
}

// KEYS[1]: the old session's key. Its text and its time to live in ms (-1: none), read together.
const FIND = `
local current = redis.call('GET', KEYS[1])
if not current then return false end
return { current, redis.call('PTTL', KEYS[1]) }
`;

// KEYS[1]: the old session's key. ARGV: the text read, the marker, its lifetime in ms. Swaps the
// session for the marker only if it is still the text read; else returns what is there now, as FIND.
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
  if not current then return false end
  return { current, redis.call('PTTL', KEYS[1]) }
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

/**
 * connect-redis's records: at `<prefix><id>`, the session's JSON text, with a TTL (the session's
 * end, also for a browser-session cookie, whose text names none). Claimed with one
 * script (compare and swap), so of concurrent claims exactly one wins.
 */
export class ConnectRedisRecords {
  constructor(
    private readonly client: ExpressSessionRedisClient,
    private readonly prefix: string,
  ) {}

  async find(id: string): Promise<FoundRecord | undefined> {
    const now = Date.now();
    return parseFound(await this.client.eval(FIND, 1, this.prefix + id), now);
  }

  async claim(id: string, found: FoundSession, newId: string, lifetime: number): Promise<true | FoundRecord | undefined> {
    const now = Date.now();
    const result = await this.client.eval(CLAIM, 1, this.prefix + id, found.version, migrationMarker(newId, lifetime, now), lifetime);
    if (result === 1) return true;
    return parseFound(result, now);
  }
}

/** A `[text, pttl]` reply: the record, ending when its key does unless its cookie says otherwise. */
function parseFound(reply: unknown, now: number): FoundRecord | undefined {
  if (!Array.isArray(reply) || typeof reply[0] !== 'string') return undefined;
  const ttl = reply[1];
  return parseExpressSession(reply[0], now, typeof ttl === 'number' && ttl >= 0 ? now + ttl : undefined);
}
