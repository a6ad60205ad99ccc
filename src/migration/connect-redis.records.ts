import { migrationMarker, parseExpressSession } from './express-session-record.js';
import type { FoundRecord, FoundSession } from './session-migration.source.js';

/** What the reader needs of an ioredis `Redis` or `Cluster` client. */
export interface ExpressSessionRedisClient {
  get(key: string): Promise<string | null>;
  eval(script: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
}

// KEYS[1]: the old session's key. ARGV: the text read, the marker, its lifetime in ms. Swaps the
// session for the marker only if it is still the text read; else returns what is there now.
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

/**
 * connect-redis's records: at `<prefix><id>`, the session's JSON text, with a TTL. Claimed with one
 * script (compare and swap), so of concurrent claims exactly one wins.
 */
export class ConnectRedisRecords {
  constructor(
    private readonly client: ExpressSessionRedisClient,
    private readonly prefix: string,
  ) {}

  async find(id: string): Promise<FoundRecord | undefined> {
    const text = await this.client.get(this.prefix + id);
    return typeof text === 'string' ? parseExpressSession(text, Date.now()) : undefined;
  }

  async claim(id: string, found: FoundSession, newId: string, lifetime: number): Promise<true | FoundRecord | undefined> {
    const now = Date.now();
    const result = await this.client.eval(CLAIM, 1, this.prefix + id, found.version, migrationMarker(newId, lifetime, now), lifetime);
    if (result === 1) return true;
    return typeof result === 'string' ? parseExpressSession(result, now) : undefined;
  }
}
