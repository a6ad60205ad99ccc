import { join } from 'node:path';
import { REDIS_INSTALL, startRedisProcess } from './redis-server.js';
import { MissingBinaryError, findBinary, makeTempDir, runCommand, waitUntil, type ServerProcess } from './server-process.js';

export interface RedisCluster {
  /** The three master ports: basePort, basePort + 1, basePort + 2. */
  readonly ports: number[];
  /** Startup nodes for an ioredis `Cluster`. */
  readonly nodes: { host: string; port: number }[];
  /** Kills every node and removes the temporary directory; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a three-master Redis Cluster (no replicas, nothing persisted) on basePort..basePort+2, in a
 * temporary directory, and waits until every node reports `cluster_state:ok`. On failure, whatever
 * was started is stopped before the error is thrown.
 */
export async function startRedisCluster({ basePort, timeoutMs = 30_000 }: { basePort: number; timeoutMs?: number }): Promise<RedisCluster> {
  const ports = [basePort, basePort + 1, basePort + 2];
  const redisCli = findBinary('redis-cli');
  if (redisCli === undefined) throw new MissingBinaryError(`redis-cli is not installed (not found on PATH): install ${REDIS_INSTALL}`);
  const dir = makeTempDir(`redis-cluster-${basePort}-`);
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
      ports.map((port) =>
        startRedisProcess(port, dir.path, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir.path, `nodes-${port}.conf`), '--cluster-node-timeout', '5000']),
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
