import { join } from 'node:path';
import { REDIS_INSTALL, startRedisProcess } from './redis-server.js';
import { MissingBinaryError, PortInUseError, findBinary, freePort, makeTempDir, runCommand, waitUntil, type ServerProcess } from './server-process.js';

export interface RedisCluster {
  /** The three master ports (free ports the OS picked). */
  readonly ports: number[];
  /** Startup nodes for an ioredis `Cluster`. */
  readonly nodes: { host: string; port: number }[];
  /** Kills every node and removes the temporary directory; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a three-master Redis Cluster (no replicas, nothing persisted) on ports the OS says are free
 * (client and cluster-bus ports alike, so runs side by side never meet), in a temporary directory,
 * and waits until every node reports `cluster_state:ok`. On failure, whatever was started is stopped
 * before the error is thrown; a port taken between choosing and binding makes it try new ones.
 */
export async function startRedisCluster({ timeoutMs = 30_000 }: { timeoutMs?: number } = {}): Promise<RedisCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisClusterOn(await distinctFreePorts(6), timeoutMs);
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

async function startRedisClusterOn(free: number[], timeoutMs: number): Promise<RedisCluster> {
  const ports = free.slice(0, 3);
  const busPorts = free.slice(3, 6);
  const redisCli = findBinary('redis-cli');
  if (redisCli === undefined) throw new MissingBinaryError(`redis-cli is not installed (not found on PATH): install ${REDIS_INSTALL}`);
  const dir = makeTempDir(`redis-cluster-${ports[0]}-`);
  const nodes: ServerProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.map((node) => node.stop()));
    dir.remove();
  };
  try {
    const started = await Promise.allSettled(
      ports.map((port, i) =>
        startRedisProcess(port, dir.path, [
          '--cluster-enabled', 'yes',
          '--cluster-port', String(busPorts[i]),
          '--cluster-config-file', join(dir.path, `nodes-${port}.conf`),
          '--cluster-node-timeout', '5000',
        ]),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;

    await runCommand(redisCli, ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeoutMs });
    await waitUntil(
      async () => {
        const states = await Promise.all(
          ports.map((port) => runCommand(redisCli, ['-p', String(port), 'cluster', 'info']).then((info) => /cluster_state:ok/.test(info), () => false)),
        );
        return states.every(Boolean);
      },
      timeoutMs,
      () => `Redis Cluster on ports ${ports.join(', ')} did not reach cluster_state:ok in time`,
    );
    return { ports, nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
