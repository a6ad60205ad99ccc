import { SessionConfigError } from '../session.errors.js';
import { putData, type SessionPatch, type SessionRecord, type SessionStore } from '../session-store.interface.js';

export interface MemoryStoreOptions {
  /** Most sessions kept; past it the session unused the longest (approximately) is evicted. Default 100,000. */
  maxSessions?: number;
  /** How often, in ms, expired sessions are swept. Default 60,000; 0 disables the timer. */
  sweepInterval?: number;
}

interface Entry {
  record: SessionRecord;
  /** The value of the store's clock when the entry was last moved to the young end. */
  tick: number;
}

/**
 * Sessions in this process's memory: the default store. Bounded (the session unused the longest
 * goes first), expired sessions swept by a timer that never keeps the process alive. For one
 * process only: sessions are lost on restart and not shared between instances.
 */
export class MemoryStore implements SessionStore {
  readonly maxSessions: number;
  // Map order is recency order, oldest first. A read moves an entry to the young end only once it
  // has drifted into the older half, so a busy session costs no map reordering on most reads.
  private readonly sessions = new Map<string, Entry>();
  private clock = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxSessions = count(options.maxSessions, 'MemoryStore maxSessions', 100_000);
    const sweepInterval = count(options.sweepInterval, 'MemoryStore sweepInterval', 60_000, true);
    if (sweepInterval > 0) {
      this.timer = setInterval(() => this.reclaim(), sweepInterval);
      this.timer.unref();
    }
  }

  /** How many sessions are held now, expired ones not yet swept included. */
  get size(): number {
    return this.sessions.size;
  }

  get(id: string): SessionRecord | undefined {
    return this.live(id)?.record;
  }

  set(id: string, record: SessionRecord): void {
    this.sessions.delete(id);
    if (this.sessions.size >= this.maxSessions) this.evictOldest();
    this.sessions.set(id, { record: { data: { ...record.data }, meta: record.meta, expiresAt: record.expiresAt }, tick: ++this.clock });
  }

  patch(id: string, patch: SessionPatch): void {
    const entry = this.live(id);
    if (entry === undefined) return;
    const data = { ...entry.record.data };
    for (const key of patch.unset) delete data[key];
    for (const key of Object.keys(patch.set)) putData(data, key, patch.set[key]);
    // A new record each time: a reader holding the old one never sees it change.
    entry.record = { data, meta: patch.meta, expiresAt: patch.expiresAt };
  }

  touch(id: string, expiresAt: number): void {
    const entry = this.live(id);
    if (entry !== undefined) entry.record = { ...entry.record, expiresAt };
  }

  destroy(id: string): void {
    this.sessions.delete(id);
  }

  reclaim(): void {
    const now = Date.now();
    for (const [id, entry] of this.sessions) {
      if (entry.record.expiresAt <= now) this.sessions.delete(id);
    }
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The entry of a session that has not expired, marked as recently used. */
  private live(id: string): Entry | undefined {
    const entry = this.sessions.get(id);
    if (entry === undefined) return undefined;
    if (entry.record.expiresAt <= Date.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    if (this.clock - entry.tick > this.maxSessions >>> 1) {
      this.sessions.delete(id);
      entry.tick = ++this.clock;
      this.sessions.set(id, entry);
    }
    return entry;
  }

  private evictOldest(): void {
    const oldest = this.sessions.keys().next();
    if (oldest.done !== true) this.sessions.delete(oldest.value);
  }
}

function count(value: unknown, option: string, fallback: number, zeroAllowed = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (zeroAllowed ? 0 : 1)) {
    throw new SessionConfigError(`${option} must be ${zeroAllowed ? 'a non-negative' : 'a positive'} integer, got ${JSON.stringify(value) ?? typeof value}`);
  }
  return value;
}
