import { join } from 'node:path';
import { REDIS_INSTALL, startRedisProcess } from './redis-server.js';
import { MissingBinaryError, PortInUseError, findBinary, freePort, makeTempDir, runCommand, waitUntil, type ServerProcess } from './server-process.js';

export interface RedisClusterOptions {
  /** Replicas per master: 0 (the default) or 1 (three masters, three replicas). */
  replicas?: 0 | 1;
  /** `cluster-node-timeout` in ms: how long a node may be unreachable before it is failed over. Default 5000. */
  nodeTimeoutMs?: number;
  /** Extra redis-server arguments for every node, e.g. `['--cluster-require-full-coverage', 'no']`. */
  extraArgs?: string[];
  timeoutMs?: number;
}

export interface RedisCluster {
  /** The three master ports at start (free ports the OS picked). */
  readonly ports: number[];
  /** The replica ports at start (empty without replicas), `replicaOf[port]` their master's port. */
  readonly replicaPorts: number[];
  readonly replicaOf: Record<number, number>;
  /** Startup nodes for an ioredis `Cluster` (every node). */
  readonly nodes: { host: string; port: number }[];
  /** SIGKILLs one node (a crash) and waits until its port refuses connections. */
  kill(port: number): Promise<void>;
  /** The ports the node on `askPort` currently sees as masters serving slots and not failed (see `servingMasters`). */
  masters(askPort: number): Promise<number[]>;
  /** Kills every node and removes the temporary directory; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a Redis Cluster of three masters (by default without replicas; with `replicas: 1`, one
 * replica each, and waits until each replica's link to its master is up), nothing persisted, on
 * ports the OS says are free (client and cluster-bus ports alike, so runs side by side never meet),
 * in a temporary directory, and waits until every node reports `cluster_state:ok`. On failure,
 * whatever was started is stopped before the error is thrown; a port taken between choosing and
 * binding makes it try new ones.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const count = 3 * (1 + (options.replicas ?? 0));
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisClusterOn(await distinctFreePorts(2 * count), count, options);
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt === 5) throw err;
    }
  }
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

async function startRedisClusterOn(free: number[], count: number, options: RedisClusterOptions): Promise<RedisCluster> {
  const { timeoutMs = 30_000, nodeTimeoutMs = 5000, extraArgs = [] } = options;
  const replicas = count > 3 ? 1 : 0;
  const all = free.slice(0, count);
  const busPorts = free.slice(count, 2 * count);
  const redisCli = findBinary('redis-cli');
  if (redisCli === undefined) throw new MissingBinaryError(`redis-cli is not installed (not found on PATH): install ${REDIS_INSTALL}`);
  const dir = makeTempDir(`redis-cluster-${all[0]}-`);
  const nodes = new Map<number, ServerProcess>();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all([...nodes.values()].map((node) => node.stop()));
    dir.remove();
  };
  const cli = (port: number, ...args: string[]) => runCommand(redisCli, ['-p', String(port), ...args], { timeoutMs: 5000 });
  try {
    const started = await Promise.allSettled(
      all.map((port, i) =>
        startRedisProcess(port, dir.path, [
          '--cluster-enabled', 'yes',
          '--cluster-port', String(busPorts[i]),
          '--cluster-config-file', join(dir.path, `nodes-${port}.conf`),
          '--cluster-node-timeout', String(nodeTimeoutMs),
          ...extraArgs,
        ]),
      ),
    );
    started.forEach((result, i) => {
      if (result.status === 'fulfilled') nodes.set(all[i], result.value);
    });
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;

    await runCommand(redisCli, ['--cluster', 'create', ...all.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { timeoutMs });
    await waitUntil(
      async () => {
        const states = await Promise.all(all.map((port) => cli(port, 'cluster', 'info').then((info) => /cluster_state:ok/.test(info), () => false)));
        return states.every(Boolean);
      },
      timeoutMs,
      () => `Redis Cluster on ports ${all.join(', ')} did not reach cluster_state:ok in time`,
    );
    // Which node redis-cli made a master, and whose replica each other node is (once gossip agrees).
    let table: NodeLine[] = [];
    await waitUntil(
      async () => {
        table = parseNodes(await cli(all[0], 'cluster', 'nodes').catch(() => ''));
        return table.length === count && table.filter((node) => node.master && node.slots).length === 3 && table.filter((node) => !node.master && node.masterId !== '-').length === count - 3;
      },
      timeoutMs,
      () => `Redis Cluster on ports ${all.join(', ')}: the nodes did not agree on three masters in time`,
    );
    const byId = new Map(table.map((node) => [node.id, node.port]));
    const ports = table.filter((node) => node.master).map((node) => node.port);
    const replicaOf: Record<number, number> = {};
    for (const node of table) if (!node.master) replicaOf[node.port] = byId.get(node.masterId)!;
    const replicaPorts = Object.keys(replicaOf).map(Number);
    await waitUntil(
      async () => {
        const links = await Promise.all(replicaPorts.map((port) => cli(port, 'info', 'replication').then((info) => /master_link_status:up/.test(info), () => false)));
        return links.every(Boolean);
      },
      timeoutMs,
      () => `the Redis Cluster replicas on ports ${replicaPorts.join(', ')} did not finish syncing with their masters in time`,
    );
    return {
      ports,
      replicaPorts,
      replicaOf,
      nodes: all.map((port) => ({ host: '127.0.0.1', port })),
      kill: async (port) => nodes.get(port)?.stop(),
      masters: async (askPort) => servingMasters(await cli(askPort, 'cluster', 'nodes')),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The ports of the masters that serve slots and are not failed, in a `CLUSTER NODES` reply. */
export function servingMasters(clusterNodes: string): number[] {
  return parseNodes(clusterNodes)
    .filter((node) => node.master && node.slots && !node.failed)
    .map((node) => node.port);
}

interface NodeLine {
  id: string;
  port: number;
  master: boolean;
  masterId: string;
  failed: boolean;
  slots: boolean;
}

/** `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master id or -> <ping> <pong> <epoch> <link> <slots…>`. */
function parseNodes(text: string): NodeLine[] {
  return text
    .trim()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.trim().split(' '))
    .map(([id, address, flags, masterId, , , , , ...slots]) => ({
      id,
      port: Number(/:(\d+)@/.exec(address)?.[1]),
      master: flags.split(',').includes('master'),
      masterId,
      failed: /\bfail\b/.test(flags.replace(/,/g, ' ')),
      slots: slots.length > 0,
    }));
}
