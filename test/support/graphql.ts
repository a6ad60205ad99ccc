import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
import { MemoryStore } from '../../src/index.js';
import type { SessionStore } from '../../src/store.js';
import { RedisStore } from '../../src/stores/redis.store.js';

/**
 * Why the GraphQL tests cannot run here, or undefined when they can. @nestjs/graphql and its
 * drivers come in one major line per NestJS line (14 for NestJS 12, 13 for NestJS 11): the tests run
 * where the installed line accepts the installed NestJS, and skip with the reason elsewhere (CI
 * installs the matching line with NestJS 11: .ci/run).
 */
export function graphqlSkipReason(): string | undefined {
  const reason = whyGraphqlCannotRun();
  // A CI run that skipped them would be green without having run them: there, a skip is a failure.
  if (reason !== undefined && process.env.CI === 'true') throw new Error(`The GraphQL tests must run under CI: ${reason}`);
  return reason;
}

function whyGraphqlCannotRun(): string | undefined {
  const manifest = (name: string) => {
    try {
      return JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')) as {
        version: string;
        peerDependencies?: Record<string, string>;
      };
    } catch {
      return undefined;
    }
  };
  const core = manifest('@nestjs/core');
  const major = core?.version.split('.')[0];
  for (const name of ['@nestjs/graphql', '@nestjs/apollo', '@nestjs/mercurius']) {
    const driver = manifest(name);
    if (driver === undefined) return `${name} is not installed`;
    const accepted = driver.peerDependencies?.['@nestjs/common'] ?? '';
    const majors = [...accepted.matchAll(/\^(\d+)/g)].map((match) => match[1]);
    if (!majors.includes(major!)) {
      return `${name} ${driver.version} is for NestJS ${accepted} and NestJS ${core?.version} is installed: install its line for this NestJS (.ci/run does for NestJS 11)`;
    }
  }
  return undefined;
}

export interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/**
 * The stores every GraphQL case runs on: MemoryStore, and RedisStore on the test Redis under
 * `prefix` at `url` (the file's hooks connect before its tests and delete what they wrote after them;
 * no url, no connection: the file's tests are skipped). The file passes `redisUrl()` itself, which is
 * how the test run knows that it needs Redis.
 */
export function graphqlStores(prefix: string, url: string | undefined): { name: string; create: (index: number) => SessionStore }[] {
  let redis: Redis | undefined;
  beforeAll(async () => {
    if (url === undefined) return;
    redis = new Redis(url, { maxRetriesPerRequest: 1 });
    await redis.ping();
  });
  afterAll(async () => {
    if (redis === undefined) return;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });
  return [
    { name: 'MemoryStore', create: () => new MemoryStore({ sweepInterval: 0 }) },
    { name: 'RedisStore', create: (index: number) => new RedisStore({ client: redis!, prefix: `${prefix}${index}:` }) },
  ];
}
