import { createClient as createClient6, createCluster as createCluster6 } from 'redis';
import { createClient as createClient5, createCluster as createCluster5 } from 'redis-v5';
import type { RedisStoreClient } from '../../src/stores/redis.store.js';

/**
 * The node-redis majors RedisStore takes a client of (the `redis` package; 5 is installed as
 * `redis-v5`), each with its default protocol: RESP3 since 6, RESP2 before.
 */
export const nodeRedisVersions: NodeRedisVersion[] = [
  { name: 'node-redis 6', createClient: createClient6, createCluster: createCluster6 as unknown as Factory },
  { name: 'node-redis 5', createClient: createClient5, createCluster: createCluster5 as unknown as Factory },
];

export interface NodeRedisVersion {
  name: string;
  createClient: Factory;
  createCluster: Factory;
}

type Factory = (options: Record<string, unknown>) => AnyNodeRedis;

/** A node-redis client as a test holds it: what it gives the store, and how to check and end it. */
export interface NodeRedisHandle {
  client: RedisStoreClient;
  /** Whether the client is connected and ready. */
  ready(): boolean;
  ping(): Promise<string>;
  /** Closes the client; safe to call twice. */
  close(): Promise<void>;
}

/**
 * The options docs/stores/redis.md gives a node-redis client: reject commands while disconnected
 * instead of queueing them, and bound each command. A cluster takes the first under `defaults`.
 */
export const NODE_REDIS_FAIL_FAST = { disableOfflineQueue: true, commandOptions: { timeout: 2000 } } as const;

/**
 * A node-redis client of `version` on a standalone Redis at `url`, set up as the docs say, with an
 * `'error'` listener (node-redis throws an error event nobody listens to); `connect: false` leaves
 * it unconnected, `wait: false` starts connecting without waiting for it.
 */
export async function nodeRedisClient(version: NodeRedisVersion, url: string, options: { connect?: boolean; wait?: boolean; extra?: Record<string, unknown> } = {}): Promise<NodeRedisHandle> {
  const client = version.createClient({ url, ...NODE_REDIS_FAIL_FAST, ...options.extra });
  client.on('error', () => undefined);
  if (options.connect !== false) {
    const connecting = client.connect();
    if (options.wait === false) connecting.catch(() => undefined);
    else await connecting;
  }
  return handle(client, false);
}

/** A node-redis cluster client of `version` on `nodes`, set up as the docs say, connected. */
export async function nodeRedisCluster(version: NodeRedisVersion, nodes: { host: string; port: number }[], extra: Record<string, unknown> = {}): Promise<NodeRedisHandle> {
  const cluster = version.createCluster({
    rootNodes: nodes.map(({ host, port }) => ({ url: `redis://${host}:${port}` })),
    defaults: { disableOfflineQueue: NODE_REDIS_FAIL_FAST.disableOfflineQueue },
    commandOptions: NODE_REDIS_FAIL_FAST.commandOptions,
    ...extra,
  });
  cluster.on('error', () => undefined);
  await cluster.connect();
  return handle(cluster, true);
}

interface AnyNodeRedis {
  on(event: 'error', listener: (error: Error) => void): unknown;
  connect(): Promise<unknown>;
  isOpen: boolean;
  isReady?: boolean;
  sendCommand: (...args: never[]) => Promise<unknown>;
  close?: () => Promise<unknown>;
  destroy(): unknown;
}

function handle(raw: AnyNodeRedis, isCluster: boolean): NodeRedisHandle {
  const client = raw as AnyNodeRedis & RedisStoreClient;
  return {
    client,
    // A node-redis 5 cluster has no isReady: open is as far as it tells.
    ready: () => client.isReady ?? client.isOpen,
    ping: async () => String(await (isCluster ? (client.sendCommand as (key: undefined, readonly: boolean, args: string[]) => Promise<unknown>)(undefined, true, ['PING']) : (client.sendCommand as (args: string[]) => Promise<unknown>)(['PING']))),
    close: async () => {
      if (!client.isOpen) return;
      try {
        await (client.close ? client.close() : undefined);
      } catch {
        // already closing or never connected
      }
      if (client.isOpen) client.destroy();
    },
  };
}
