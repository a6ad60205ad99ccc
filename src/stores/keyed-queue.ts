/**
 * Work queued per key (a session id), each run once the work queued before it for the same key has
 * settled: a store's writes of one id land in the order they were made, in this process.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `work` after every earlier work of `key` has settled (failed ones too). */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(key) ?? Promise.resolve()).then(work);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return run;
  }

  /** How many keys have work queued or running. */
  get size(): number {
    return this.tails.size;
  }

  /** Settles once the work queued now has (never rejects). */
  settled(): Promise<unknown> {
    return Promise.all(this.tails.values());
  }
}
