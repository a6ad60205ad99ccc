import type { SessionPatch, SessionRecord, SessionStore } from '../../src/index.js';

type Operation = 'get' | 'set' | 'patch' | 'touch' | 'destroy';

/**
 * Any server-side store (MemoryStore, RedisStore...) behind calls that are counted and can be made
 * to fail a given number of times: an outage of the real store, as the session engine sees it.
 */
export class CountingStore implements SessionStore {
  readonly calls: Operation[] = [];
  private readonly failures: Partial<Record<Operation, number>> = {};

  constructor(readonly inner: SessionStore) {}

  get(id: string) {
    return this.run('get', () => this.inner.get(id));
  }
  set(id: string, record: SessionRecord) {
    return this.run('set', () => this.inner.set(id, record));
  }
  patch(id: string, patch: SessionPatch) {
    return this.run('patch', () => this.inner.patch(id, patch));
  }
  touch(id: string, expiresAt: number) {
    return this.run('touch', () => this.inner.touch(id, expiresAt));
  }
  destroy(id: string) {
    return this.run('destroy', () => this.inner.destroy(id));
  }
  close() {
    return this.inner.close?.();
  }

  /** How many calls of `operation` were made since the last `reset()`. */
  count(operation: Operation): number {
    return this.calls.filter((call) => call === operation).length;
  }

  /** Forgets the calls counted so far. */
  reset(): void {
    this.calls.length = 0;
  }

  /** The next `times` calls of `operation` fail as a store that is down would. */
  failNext(operation: Operation, times = 1): void {
    this.failures[operation] = times;
  }

  private async run<T>(operation: Operation, work: () => T | PromiseLike<T>): Promise<T> {
    this.calls.push(operation);
    if ((this.failures[operation] ?? 0) > 0) {
      this.failures[operation]! -= 1;
      throw new Error(`${operation} refused: connect ECONNREFUSED 10.1.2.3:6379 (the test store)`);
    }
    return await work();
  }
}
