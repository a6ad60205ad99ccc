/**
 * `nest-sessions/health`: `SessionHealthIndicator`, a `@nestjs/terminus` health indicator that pings
 * the session stores (`@nestjs/terminus` is an optional peer dependency: the entry point loads
 * without it).
 *
 * @module nest-sessions/health
 */
import { Injectable } from '@nestjs/common';
import { SessionEngine } from './lifecycle/session-engine.js';
import { isThenable } from './lifecycle/thenable.js';
import type { SessionDefinition } from './session/session-definition.js';
import { requirePeer } from './stores/optional-peer.js';
import { isClientSideStore, type SessionStore } from './stores/session-store.interface.js';
import { SessionConfigError } from './session/session.errors.js';
import { redactFailure } from './observability/redact-failure.js';

/** What a health check says of the store of one session. */
export interface SessionStoreHealth {
  /** The store's class, such as `'RedisStore'`. */
  store: string;
  /**
   * `up`: it answered its ping in time. `down`: its ping failed or did not answer in time.
   * `unchecked`: it has no `ping()` (a store of your own, an express-session store), so nothing is
   * known; it does not make the check fail.
   */
  status: 'up' | 'down' | 'unchecked';
  /** Why it is down or unchecked: the failure, without addresses, URLs or user names. */
  message?: string;
}

/** The stores' health under `key`, in terminus's format: `status` is `down` when any store is down. */
export type SessionHealthResult<Key extends string = string> = Record<
  Key,
  {
    /** `down` when the store of any session checked is down. */
    status: 'up' | 'down';
    /** By session name (`default`, and each of `sessions`); cookie-stored sessions have no store to check and are left out. */
    stores: Record<string, SessionStoreHealth>;
  }
>;

/** Options of `SessionHealthIndicator.isHealthy()`. */
export interface SessionHealthOptions {
  /** How long, in ms, a store may take to answer its ping. Default: `storeTimeout` (5000 unless set). */
  timeout?: number;
  /**
   * The sessions whose stores are checked, by name (`'default'` for the default session). Default:
   * all. A readiness check can name only the sessions the app cannot serve without.
   */
  sessions?: readonly string[];
}

/** What the indicator needs of terminus's `HealthIndicatorService` (v11 and v12 alike). */
interface HealthIndicators {
  check(key: string): { up(data: object): unknown; down(data: object): unknown };
}

/**
 * A health indicator for `@nestjs/terminus`: pings the store of every session (each store once,
 * however many sessions share it) and reports `up`, or `down` with the store that failed and why.
 * Provide it beside `TerminusModule`, and call it from a health check:
 *
 * `health.check([() => sessionHealth.isHealthy('sessions')])`
 */
@Injectable()
export class SessionHealthIndicator {
  private readonly indicators: HealthIndicators;

  /** @internal Nest's injector creates it. */
  constructor(private readonly engine: SessionEngine) {
    const { HealthIndicatorService } = requirePeer<typeof import('@nestjs/terminus')>('@nestjs/terminus', 'SessionHealthIndicator (nest-sessions/health)');
    this.indicators = new HealthIndicatorService();
  }

  /** Pings the stores at once; resolves within the timeout, whatever they do. */
  async isHealthy<const Key extends string>(key: Key, options: SessionHealthOptions = {}): Promise<SessionHealthResult<Key>> {
    const { timeout, sessions } = options;
    if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= 2 ** 31 - 1)) {
      throw new SessionConfigError(`SessionHealthIndicator: timeout must be a number of ms from 1 to ${2 ** 31 - 1}, such as 1000; got ${String(timeout)}`);
    }
    const definitions = sessions === undefined ? [...this.engine.definitions.values()] : sessions.map((name) => this.engine.definition(name));
    const pings = new Map<object, Promise<SessionStoreHealth>>();
    const entries = definitions
      .filter((def) => !isClientSideStore(def.store))
      .map(async (def): Promise<[string, SessionStoreHealth]> => {
        let health = pings.get(def.store);
        if (health === undefined) pings.set(def.store, (health = checkStore(def, timeout ?? def.storeTimeout)));
        return [def.name, await health];
      });
    const stores = Object.fromEntries(await Promise.all(entries)) as Record<string, SessionStoreHealth>;
    const session = this.indicators.check(key);
    const down = Object.values(stores).some((each) => each.status === 'down');
    return (down ? session.down({ stores }) : session.up({ stores })) as SessionHealthResult<Key>;
  }
}

/** The health of the store of `def`: its ping, bounded by `timeout` ms. */
async function checkStore(def: SessionDefinition, timeout: number): Promise<SessionStoreHealth> {
  const store = def.store as SessionStore;
  const name = (store as object).constructor?.name || 'SessionStore';
  if (typeof store.ping !== 'function') return { store: name, status: 'unchecked', message: 'the store has no ping()' };
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = store.ping();
    if (isThenable(answer)) {
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeout} ms`)), timeout);
      });
      await Promise.race([Promise.resolve(answer), late]);
    }
    return { store: name, status: 'up' };
  } catch (error) {
    return { store: name, status: 'down', message: redactFailure(error instanceof Error ? error.message : String(error)) };
  } finally {
    clearTimeout(timer);
  }
}
