import { readFileSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { startPostgresServer } from './postgres-server.js';
import { startRedisServer } from './redis-server.js';
import { MissingBinaryError, onFreePort } from './server-process.js';
import type { Services } from './services.js';

/**
 * vitest globalSetup: once per run, starts a throw-away redis-server and PostgreSQL cluster on free
 * ports, for the test files of the run that ask for them (that call `redisUrl()` / `postgresUrl()`
 * from ./services.ts), and stops them (and removes their directories) when the run ends.
 * REDIS_URL / DATABASE_URL, when set, are used instead of starting one.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const needs = servicesNeeded(project);
  const started: { stop(): Promise<void> }[] = [];
  const services: Services = {};

  const results = await Promise.allSettled([
    (async () => {
      if (!needs.redis) return;
      if (process.env.REDIS_URL) return void (services.redis = process.env.REDIS_URL);
      const server = await onFreePort((port) => startRedisServer(port));
      started.push(server);
      services.redis = `redis://127.0.0.1:${server.port}`;
    })().catch((err: Error) => {
      throw new Error(`${err.message}${err instanceof MissingBinaryError ? ', or set REDIS_URL to a Redis the tests may write to' : ''}`, { cause: err });
    }),
    (async () => {
      if (!needs.postgres) return;
      if (process.env.DATABASE_URL) return void (services.postgres = process.env.DATABASE_URL);
      // Thrown away after the run: nothing needs to reach the disk.
      const settings = { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' };
      const server = await onFreePort((port) => startPostgresServer(port, { settings }));
      started.push({ stop: () => server.dispose() });
      services.postgres = server.connectionString;
    })().catch((err: Error) => {
      throw new Error(`${err.message}${err instanceof MissingBinaryError ? ', or set DATABASE_URL to a PostgreSQL database the tests may write to' : ''}`, { cause: err });
    }),
  ]);

  const teardown = async () => {
    await Promise.all(started.splice(0).map((server) => server.stop()));
  };
  const failures = results.flatMap((result) => (result.status === 'rejected' ? [(result.reason as Error).message] : []));
  if (failures.length > 0) {
    await teardown();
    const error = new Error(`The tests start their own Redis and PostgreSQL, and could not:\n- ${failures.join('\n- ')}`);
    error.stack = error.message; // the message says it all; a stack of this file would only hide it
    throw error;
  }
  project.provide('services', services);
  return teardown;
}


/**
 * Which servers the files of this run ask for (a file that calls `redisUrl()` needs Redis), so that
 * `vitest run test/unit` starts nothing. When the run's files are unknown, both.
 */
function servicesNeeded(project: TestProject): { redis: boolean; postgres: boolean } {
  let paths: string[] = [];
  try {
    paths = project.vitest.state.getPaths(); // experimental API: filled in before the global setup runs
  } catch {
    // fall through: start both
  }
  if (paths.length === 0) return { redis: true, postgres: true };
  const sources = paths.map((path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return 'redisUrl( postgresUrl(';
    }
  });
  return { redis: sources.some((source) => /\bredisUrl\(/.test(source)), postgres: sources.some((source) => /\bpostgresUrl\(/.test(source)) };
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: Services;
  }
}
