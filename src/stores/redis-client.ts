/**
 * An ioredis `Redis` or `Cluster`, as far as RedisStore uses it. Described here rather than imported,
 * as is node-redis's client below, so that the store compiles and loads with either package
 * installed, or neither.
 */
export interface IoredisClient {
  /** Runs a script the server already holds, by its SHA-1 (`EVALSHA`). */
  evalsha(sha: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
  /** Runs a Lua script (`EVAL`). */
  eval(script: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
  /** Every field of a hash (`HGETALL`). */
  hgetall(key: string): Promise<Record<string, string> | string[]>;
  /** Some fields of a hash (`HMGET`). */
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
}

/**
 * A node-redis client or cluster (`createClient()` or `createCluster()` of the `redis` package, 5 or 6),
 * as far as RedisStore uses it. Described here rather than imported, so that the store compiles and
 * loads with either package installed, or neither.
 */
export interface NodeRedisClient {
  /** Runs a script the server already holds, by its SHA-1 (`EVALSHA`). */
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** Runs a Lua script (`EVAL`). */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** Every field of a hash (`HGETALL`). */
  hGetAll(key: string): Promise<unknown>;
  /** Some fields of a hash (`HMGET`). */
  hmGet(key: string, fields: string[]): Promise<unknown>;
  /** Whether `connect()` was called and the client was not closed since. */
  readonly isOpen: boolean;
}

/** A client RedisStore accepts: ioredis `Redis` or `Cluster`, or node-redis `createClient()` or `createCluster()`. */
export type RedisStoreClient = IoredisClient | NodeRedisClient;

/**
 * The commands RedisStore sends, the same whichever client carries them. Each touches one key, so a
 * Cluster client routes it to the node that holds the key's slot.
 */
export interface RedisCommands {
  evalsha(sha: string, key: string, args: (string | number)[]): Promise<unknown>;
  eval(lua: string, key: string, args: (string | number)[]): Promise<unknown>;
  /** The hash's fields as an object; empty when the key does not exist. */
  hgetall(key: string): Promise<Record<string, string>>;
  hmget(key: string, fields: string[]): Promise<(string | null)[]>;
  /** Why calls fail because of how the client is set up, to add to the error; undefined when nothing is known. */
  setupProblem(): string | undefined;
}

/**
 * The commands of `client`, told apart by shape (ioredis names them `evalsha`, node-redis `evalSha`),
 * so that neither package is loaded here; undefined when `client` is neither.
 */
export function redisCommandsOf(client: unknown): RedisCommands | undefined {
  if (client === null || typeof client !== 'object') return undefined;
  if (hasMethods(client, ['evalsha', 'eval', 'hgetall', 'hmget'])) return ioredisCommands(client as IoredisClient);
  if (hasMethods(client, ['evalSha', 'eval', 'hGetAll', 'hmGet'])) return nodeRedisCommands(client as NodeRedisClient);
  return undefined;
}

function hasMethods(client: object, names: string[]): boolean {
  return names.every((name) => typeof (client as Record<string, unknown>)[name] === 'function');
}

function ioredisCommands(client: IoredisClient): RedisCommands {
  return {
    evalsha: (sha, key, args) => client.evalsha(sha, 1, key, ...args),
    eval: (lua, key, args) => client.eval(lua, 1, key, ...args),
    hgetall: async (key) => toObject(await client.hgetall(key)),
    hmget: (key, fields) => client.hmget(key, ...fields),
    setupProblem: () => undefined,
  };
}

/**
 * node-redis maps replies by the client's `typeMapping` (Buffers, Maps, strings for numbers): the
 * store's calls go through `withTypeMapping({})`, the default mapping (text as strings, integers as
 * numbers), so that the scripts' answers read the same under any client setup and either RESP version.
 * Arguments are sent as strings: node-redis takes no numbers.
 */
function nodeRedisCommands(client: NodeRedisClient): RedisCommands {
  const withMapping = (client as { withTypeMapping?: (mapping: object) => NodeRedisClient }).withTypeMapping;
  const commands = typeof withMapping === 'function' ? withMapping.call(client, {}) : client;
  const options = (key: string, args: (string | number)[]) => ({ keys: [key], arguments: args.map(String) });
  return {
    evalsha: (sha, key, args) => commands.evalSha(sha, options(key, args)),
    eval: (lua, key, args) => commands.eval(lua, options(key, args)),
    hgetall: async (key) => toObject((await commands.hGetAll(key)) as Record<string, string> | string[] | Map<string, string>),
    hmget: async (key, fields) => (await commands.hmGet(key, fields)) as (string | null)[],
    setupProblem: () => (client.isOpen === false ? 'the node-redis client is not open: call `await client.connect()` before serving' : undefined),
  };
}

/** HGETALL answers an object, a flat field/value list (some ioredis reply mappings) or a Map (a node-redis type mapping). */
function toObject(reply: Record<string, string> | string[] | Map<string, string>): Record<string, string> {
  if (Array.isArray(reply)) {
    const out: Record<string, string> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) define(out, reply[i], reply[i + 1]);
    return out;
  }
  if (reply instanceof Map) {
    const out: Record<string, string> = {};
    for (const [field, value] of reply) define(out, field, value);
    return out;
  }
  return reply;
}

function define(target: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
