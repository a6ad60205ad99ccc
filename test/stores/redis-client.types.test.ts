import { Cluster, Redis } from 'ioredis';
import { createClient, createCluster, RESP_TYPES } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis-v5';
import { describe, expectTypeOf, it } from 'vitest';
import { RedisStore, type RedisStoreOptions } from '../../src/stores/redis.store.js';

// Type-level tests: `npm run typecheck` compiles this file, and fails when a line below stops
// compiling or a `@ts-expect-error` line is not an error. The function is compiled, never run: each
// line is what an app would write.

function stores() {
  const url = 'redis://127.0.0.1:6379';
  return [
    new RedisStore({ client: createClient() }),
    new RedisStore({ client: createClient({ url, RESP: 2, disableOfflineQueue: true, commandOptions: { timeout: 2000 } }) }),
    new RedisStore({ client: createClient({ url }).withTypeMapping({ [RESP_TYPES.MAP]: Map }), prefix: 'app:sess:' }),
    new RedisStore({ client: createCluster({ rootNodes: [{ url }], defaults: { disableOfflineQueue: true }, commandOptions: { timeout: 2000 } }) }),
    new RedisStore({ client: createClient5({ url }) }),
    new RedisStore({ client: createCluster5({ rootNodes: [{ url }] }) }),
    new RedisStore({ client: new Redis(url) }),
    new RedisStore({ client: new Cluster([{ host: '127.0.0.1', port: 7000 }]) }),
    // @ts-expect-error not a Redis client
    new RedisStore({ client: {} }),
    // @ts-expect-error a URL goes in `url`
    new RedisStore({ client: url }),
  ];
}

type ClientOption = NonNullable<RedisStoreOptions['client']>;

describe('the `client` option of RedisStore', () => {
  it('takes node-redis 6 and 5 clients and clusters, and ioredis ones', () => {
    expectTypeOf(stores).returns.items.toEqualTypeOf<RedisStore>();
    expectTypeOf<ReturnType<typeof createClient>>().toExtend<ClientOption>();
    expectTypeOf<ReturnType<typeof createCluster>>().toExtend<ClientOption>();
    expectTypeOf<ReturnType<typeof createClient5>>().toExtend<ClientOption>();
    expectTypeOf<ReturnType<typeof createCluster5>>().toExtend<ClientOption>();
    expectTypeOf<Redis>().toExtend<ClientOption>();
    expectTypeOf<Cluster>().toExtend<ClientOption>();
  });

  it('refuses what is no Redis client', () => {
    expectTypeOf<{ get(key: string): Promise<string | null> }>().not.toExtend<ClientOption>();
    expectTypeOf<string>().not.toExtend<ClientOption>();
  });
});
