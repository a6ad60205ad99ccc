import type { ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { assertPortFree, kill, sleep, spawnRedis, waitForPort } from './redis-server.js';

const run = promisify(execFile);

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
  const dir = mkdtempSync(join(tmpdir(), `redis-cluster-${basePort}-`));
  const children: ChildProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(children.map(kill));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const port of ports) await assertPortFree(port);
    for (const port of ports) {
      children.push(
        spawnRedis(port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '5000']),
      );
    }
    await Promise.all(ports.map((port) => waitForPort(port)));
    await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: timeoutMs },
    ).catch((err: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(`redis-cli --cluster create failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
    await waitForClusterOk(ports, Date.now() + timeoutMs);
    return { ports, nodes: ports.map((port) => ({ host: '127.0.0.1', port })), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForClusterOk(ports: number[], deadline: number): Promise<void> {
  for (;;) {
    const states = await Promise.all(
      ports.map(async (port) => {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']).catch(() => ({ stdout: '' }));
        return /cluster_state:ok/.test(stdout);
      }),
    );
    if (states.every(Boolean)) return;
    if (Date.now() > deadline) {
      throw new Error(`Redis Cluster on ports ${ports.join(', ')} did not reach cluster_state:ok in time`);
    }
    await sleep(100);
  }
}
