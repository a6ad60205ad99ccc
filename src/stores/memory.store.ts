import { SessionConfigError } from '../session.errors.js';
import type { SessionPatch, SessionRecord, SessionStore } from '../session-store.interface.js';

export interface MemoryStoreOptions {
  /** Most sessions kept; past it the least recently used is evicted. Default 100,000. */
  maxSessions?: number;
  /** How often, in ms, expired sessions are swept. Default 60,000; 0 disables the timer. */
  sweepInterval?: number;
}

/**
 * Sessions in this process's memory: the default store. Bounded (least recently used evicted
 * first), expired sessions swept by a timer that never keeps the process alive. For one process
 * only: sessions are lost on restart and not shared between instances.
 */
export class MemoryStore implements SessionStore {
  readonly maxSessions: number;
  // Map order is recency order: a read moves the session to the end.
  private readonly sessions = new Map<string, SessionRecord>();
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
    const record = this.sessions.get(id);
    if (record === undefined) return undefined;
    this.sessions.delete(id);
    if (record.expiresAt <= Date.now()) return undefined;
    this.sessions.set(id, record);
    return record;
  }

  set(id: string, record: SessionRecord): void {
    this.sessions.delete(id);
    if (this.sessions.size >= this.maxSessions) this.evictOldest();
    this.sessions.set(id, { data: copy(record.data), meta: record.meta, expiresAt: record.expiresAt });
  }

  patch(id: string, patch: SessionPatch): void {
    const current = this.get(id);
    if (current === undefined) return;
    const data = copy(current.data);
    for (const key of patch.unset) delete data[key];
    for (const key of Object.keys(patch.set)) data[key] = patch.set[key];
    // A new record each time: a reader holding the old one never sees it change.
    this.sessions.set(id, { data, meta: patch.meta, expiresAt: patch.expiresAt });
  }

  touch(id: string, expiresAt: number): void {
    const current = this.get(id);
    if (current !== undefined) this.sessions.set(id, { ...current, expiresAt });
  }

  destroy(id: string): void {
    this.sessions.delete(id);
  }

  reclaim(): void {
    const now = Date.now();
    for (const [id, record] of this.sessions) {
      if (record.expiresAt <= now) this.sessions.delete(id);
    }
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private evictOldest(): void {
    const oldest = this.sessions.keys().next();
    if (oldest.done !== true) this.sessions.delete(oldest.value);
  }
}

/** A copy without a prototype, so keys such as `__proto__` stay plain data. */
function copy(data: Record<string, string>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, data);
}

function count(value: unknown, option: string, fallback: number, zeroAllowed = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (zeroAllowed ? 0 : 1)) {
    throw new SessionConfigError(`${option} must be ${zeroAllowed ? 'a non-negative' : 'a positive'} integer, got ${JSON.stringify(value) ?? typeof value}`);
  }
  return value;
}
