import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { CookieStore, FileStore, MemoryStore, type AnySessionStore } from 'nest-sessions';

const STORE_KINDS = ['memory', 'file', 'cookie', 'redis', 'postgres'];

/**
 * The session store named by `SESSION_STORE` (default `memory`). Redis and PostgreSQL are loaded
 * only when chosen, so the default run needs neither ioredis nor pg.
 */
export async function createStore(env: NodeJS.ProcessEnv = process.env): Promise<AnySessionStore> {
  const kind = env.SESSION_STORE ?? 'memory';
  const logger = new Logger('SessionStore');
  switch (kind) {
    case 'memory':
      logger.log('Sessions in memory: they end when the process stops');
      return new MemoryStore();
    case 'file': {
      const directory = env.SESSION_DIR ?? '.sessions';
      logger.log(`Sessions in files under ${directory}`);
      return new FileStore({ directory });
    }
    case 'cookie': {
      // Encrypted into the cookie itself. The key is derived from SESSION_SECRET for its own purpose.
      let secret = env.SESSION_SECRET;
      if (secret === undefined) {
        secret = randomBytes(32).toString('base64url');
        logger.warn('No SESSION_SECRET: session cookies are encrypted with a random key for this process only');
      }
      logger.log('Sessions in encrypted cookies');
      return new CookieStore({ secret });
    }
    case 'redis': {
      const { RedisStore } = await import('nest-sessions/redis');
      const url = env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      logger.log(`Sessions in Redis at ${redact(url)}`);
      return new RedisStore({ url }); // the store owns this client and closes it at shutdown
    }
    case 'postgres': {
      const [{ PostgresStore }, { default: pg }] = await Promise.all([import('nest-sessions/postgres'), import('pg')]);
      const url = env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
      logger.log(`Sessions in PostgreSQL at ${redact(url)}`);
      // The store creates its table on first use. The pool lives as long as the process.
      return new PostgresStore({ pool: new pg.Pool({ connectionString: url }) });
    }
    default:
      throw new Error(`SESSION_STORE=${kind} is not one of ${STORE_KINDS.join(', ')}`);
  }
}

/** A connection URL without its password, for the log. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
