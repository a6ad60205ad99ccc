import { describe, expect, it } from 'vitest';
import { redactFailure } from '../../src/observability/redact-failure.js';

// What a health answer may show of a store's failure: the failure, never where the back-end is or
// who connects to it.

describe('redactFailure', () => {
  it.each([
    ['RedisStore: ping failed: connect ECONNREFUSED 127.0.0.1:6379', 'RedisStore: ping failed: connect ECONNREFUSED <address>'],
    ['PostgresStore: ping failed: connect ECONNREFUSED ::1:5432', 'PostgresStore: ping failed: connect ECONNREFUSED <address>'],
    ['connect ETIMEDOUT [fe80::1%eth0]:6379', 'connect ETIMEDOUT <address>'],
    ['connect ECONNREFUSED 10.0.0.7', 'connect ECONNREFUSED <address>'],
    ['getaddrinfo ENOTFOUND sessions.db.internal', 'getaddrinfo ENOTFOUND <host>'],
    ['getaddrinfo EAI_AGAIN redis-master', 'getaddrinfo EAI_AGAIN <host>'],
    ['connect to redis-0.redis.svc:6380 failed', 'connect to <address> failed'],
    ['could not connect to redis://app:s3cret@cache.internal:6379/0 now', 'could not connect to <url> now'],
    ['password authentication failed for user "sessions_app"', 'password authentication failed for user <name>'],
    ['database "sessions" does not exist', 'database <name> does not exist'],
    ['role "app" does not exist', 'role <name> does not exist'],
    ['connect ENOENT /var/run/postgresql/.s.PGSQL.5432', 'connect ENOENT <path>'],
  ])('%s', (message, expected) => {
    expect(redactFailure(message)).toBe(expected);
  });

  it('keeps a message with nothing to hide as it is', () => {
    for (const message of [
      'no answer within 1000 ms',
      'NOAUTH Authentication required.',
      'RedisStore: ping failed: Connection is closed.',
      'FileStore cannot use its directory (EACCES): check that it exists and is readable and writable',
    ]) {
      expect(redactFailure(message)).toBe(message);
    }
  });

  it('cuts a long message short', () => {
    const cut = redactFailure('x'.repeat(1000));
    expect(cut).toHaveLength(200);
    expect(cut.endsWith('…')).toBe(true);
  });
});
