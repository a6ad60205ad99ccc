import { MemoryStore } from '../../src/index.js';
import type { SessionPatch, SessionRecord, SessionStore } from '../../src/store.js';

type Operation = 'get' | 'set' | 'patch' | 'touch' | 'destroy' | 'ping';

/**
 * A server-side store for tests: any store (a MemoryStore unless given one) behind calls that can
 * be slowed down, made to fail a given number of times as a store that is down would, answered
 * with plain thenables instead of promises, and counted.
 */
export class ControlledStore<S extends SessionStore = MemoryStore> implements SessionStore {
  constructor(readonly inner: S = new MemoryStore({ sweepInterval: 0 }) as unknown as S) {}

  /** ms each call waits before it runs. */
  delay = 0;
  /** Answer with `{ then }` objects that are not promises. */
  thenables = false;
  /** How many of the next calls of each operation fail. */
  readonly failures: Partial<Record<Operation, number>> = {};
  readonly calls: Operation[] = [];
  /** Answers to hold back: the next call of the operation runs, and its answer waits for this. */
  private readonly held = new Map<Operation, Promise<void>>();

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
  /** The health check's round trip: fails, waits or is held like the other calls. */
  ping() {
    return this.run('ping', () => this.inner.ping?.());
  }
  close() {
    return this.inner.close?.();
  }

  /** Forgets the calls counted so far. */
  reset(): void {
    this.calls.length = 0;
  }

  /** How many calls of `operation` were made so far. */
  count(operation: Operation): number {
    return this.calls.filter((call) => call === operation).length;
  }

  failNext(operation: Operation, times = 1): void {
    this.failures[operation] = times;
  }

  /**
   * The next call of `operation` reaches the store as usual, but its answer is held back until the
   * returned function is called: a call still in flight while something else happens.
   */
  holdNextAnswer(operation: Operation): () => void {
    let release!: () => void;
    this.held.set(operation, new Promise<void>((resolve) => (release = resolve)));
    return release;
  }

  /**
   * The next call of `operation` waits, before it reaches the store, until the returned function is
   * called: a write that lands late, after writes sent after it (a pool of two connections).
   */
  holdNextCall(operation: Operation): () => void {
    let release!: () => void;
    this.heldCalls.set(operation, new Promise<void>((resolve) => (release = resolve)));
    return release;
  }

  private readonly heldCalls = new Map<Operation, Promise<void>>();

  private run<T>(operation: Operation, work: () => T | PromiseLike<T>): PromiseLike<T> {
    const heldCall = this.heldCalls.get(operation);
    if (heldCall !== undefined) {
      this.heldCalls.delete(operation);
      const late = () => this.run(operation, work);
      return heldCall.then(late);
    }
    this.calls.push(operation);
    const hold = this.held.get(operation);
    this.held.delete(operation);
    const settle = (resolve: (value: T) => void, reject: (error: unknown) => void) => {
      setTimeout(() => {
        if ((this.failures[operation] ?? 0) > 0) {
          this.failures[operation]! -= 1;
          reject(new Error(`${operation} refused: connect ECONNREFUSED 10.1.2.3:6379 (the test store)`));
          return;
        }
        try {
          Promise.resolve(work()).then((value) => (hold === undefined ? resolve(value) : void hold.then(() => resolve(value))), reject);
        } catch (error) {
          reject(error);
        }
      }, this.delay);
    };
    if (!this.thenables) return new Promise<T>(settle);
    // A bare thenable, as query builders and other promise libraries return.
    return {
      then<R1 = T, R2 = never>(onFulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null, onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null) {
        return new Promise<T>(settle).then(onFulfilled, onRejected);
      },
    };
  }
}
