import { inject } from 'vitest';

/** The servers the global setup (./global-setup.ts) gives this run: its own, or REDIS_URL / DATABASE_URL. */
export interface Services {
  redis?: string;
  postgres?: string;
}

function service(key: keyof Services, what: string): string {
  let services: Services | undefined;
  try {
    services = inject('services');
  } catch {
    // not inside a vitest worker
  }
  const url = services?.[key];
  if (url === undefined) {
    throw new Error(
      `no ${what} in this test run: test/support/global-setup.ts starts one for the test files that call ${key}Url() themselves; ` +
        'run them with vitest.config.ts, and restart a watch-mode vitest after adding such a call',
    );
  }
  return url;
}

/** A Redis for this run: `redis://127.0.0.1:<port>` of a redis-server the run started, or REDIS_URL. Keys must carry a prefix of the test's own. */
export function redisUrl(): string {
  return service('redis', 'Redis');
}

/** A PostgreSQL database for this run: a cluster the run initialised, or DATABASE_URL. Tables must carry a name of the test's own. */
export function postgresUrl(): string {
  return service('postgres', 'PostgreSQL');
}
