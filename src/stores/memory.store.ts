import { SessionConfigError } from '../session/session.errors.js';
import type { SessionMeta, SessionPatch, SessionRecord, SessionStore, UserSessionEntry } from './session-store.interface.js';
import { applyPatch } from './record-patch.js';

/** The options of `new MemoryStore(options?)`. */
export interface MemoryStoreOptions {
  /**
   * Most sessions kept. Past it, a session used only once goes first (the oldest of them), so a flood
   * of one-request visitors cannot push out sessions in use; then the session unused the longest
   * (approximately). Default 100,000.
   */
  maxSessions?: number;
  /** How often, in ms, expired sessions are swept. Default 60,000; 0 disables the timer. */
  sweepInterval?: number;
}

interface Entry {
  record: SessionRecord;
  /** The value of the store's clock when the entry was last moved to the young end of `established`. */
  tick: number;
}

/**
 * Sessions in this process's memory: the default store. Bounded by a segmented LRU: a new session
 * waits on probation until it is used again, and the store evicts from probation first. Expired
 * sessions are swept by a timer that never keeps the process alive. For one process only: sessions
 * are lost on restart and not shared between instances.
 */
export class MemoryStore implements SessionStore {
  /** The most sessions kept (`maxSessions`, default 100,000). */
  readonly maxSessions: number;
  /** How many sessions `established` holds at most; the rest of the room is probation's. */
  private readonly establishedCapacity: number;
  // Sessions written but not used since, oldest first: the first to be evicted.
  private readonly probation = new Map<string, Entry>();
  // Sessions used again after their first write. Map order is recency order, oldest first; a read
  // moves an entry to the young end only once it has drifted into the older half, so a busy session
  // costs no map reordering on most reads.
  private readonly established = new Map<string, Entry>();
  private clock = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Ids of the sessions tied to each user; every removal of a session (destroy, expiry, sweep, eviction) removes it here too. */
  private readonly byUser = new Map<string, Set<string>>();

  constructor(options: MemoryStoreOptions = {}) {
    this.maxSessions = count(options.maxSessions, 'MemoryStore maxSessions', 100_000);
    this.establishedCapacity = Math.max(1, Math.floor(this.maxSessions * 0.8));
    const sweepInterval = count(options.sweepInterval, 'MemoryStore sweepInterval', 60_000, true);
    if (sweepInterval > 0) {
      this.timer = setInterval(() => this.reclaim(), sweepInterval);
      this.timer.unref();
    }
  }

  /** How many sessions are held now, expired ones not yet swept included. */
  get size(): number {
    return this.probation.size + this.established.size;
  }

  get(id: string): SessionRecord | undefined {
    return this.live(id)?.record;
  }

  set(id: string, record: SessionRecord): void {
    const copy: SessionRecord = { data: { ...record.data }, meta: ownMeta(record.meta), expiresAt: record.expiresAt };
    const current = this.established.get(id);
    if (current !== undefined) {
      this.retie(id, current.record.meta.user?.id, copy.meta.user?.id);
      current.record = copy;
      return;
    }
    const old = this.probation.get(id);
    if (old !== undefined) this.probation.delete(id);
    else if (this.size >= this.maxSessions) this.evict();
    this.retie(id, old?.record.meta.user?.id, copy.meta.user?.id);
    this.probation.set(id, { record: copy, tick: 0 });
  }

  patch(id: string, patch: SessionPatch): void {
    const entry = this.live(id);
    if (entry === undefined) return;
    if (patch.user !== undefined) this.retie(id, entry.record.meta.user?.id, patch.user?.id);
    entry.record = applyPatch(entry.record, hasFlash(patch) ? { ...patch, flash: { set: jsonCopy(patch.flash.set), unset: patch.flash.unset } } : patch);
  }

  /** The live sessions tied to `userId`; a session found expired on the way is removed. */
  listByUser(userId: string): UserSessionEntry[] {
    const ids = this.byUser.get(userId);
    if (ids === undefined) return [];
    const now = Date.now();
    const found: UserSessionEntry[] = [];
    for (const id of ids) {
      const segment = this.established.has(id) ? this.established : this.probation;
      const entry = segment.get(id);
      if (entry === undefined) continue;
      if (entry.record.expiresAt <= now) {
        this.remove(segment, id, entry);
        continue;
      }
      found.push({ id, meta: entry.record.meta, expiresAt: entry.record.expiresAt });
    }
    return found;
  }

  touch(id: string, expiresAt: number): void {
    const entry = this.live(id);
    if (entry !== undefined) entry.record = { ...entry.record, expiresAt };
  }

  destroy(id: string): void {
    const segment = this.established.has(id) ? this.established : this.probation;
    const entry = segment.get(id);
    if (entry !== undefined) this.remove(segment, id, entry);
  }

  reclaim(): void {
    const now = Date.now();
    for (const segment of [this.probation, this.established]) {
      for (const [id, entry] of segment) {
        if (entry.record.expiresAt <= now) this.remove(segment, id, entry);
      }
    }
  }

  /** Always answers: the sessions live in this process. */
  ping(): void {}

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Removes a session from its segment and from its user's index. */
  private remove(segment: Map<string, Entry>, id: string, entry: Entry): void {
    segment.delete(id);
    const user = entry.record.meta.user?.id;
    if (user !== undefined) this.retie(id, user, undefined);
  }

  /** Moves `id` from `from`'s index to `to`'s. */
  private retie(id: string, from: string | undefined, to: string | undefined): void {
    if (from === to) return;
    if (from !== undefined) {
      const ids = this.byUser.get(from);
      if (ids !== undefined && ids.delete(id) && ids.size === 0) this.byUser.delete(from);
    }
    if (to !== undefined) {
      let ids = this.byUser.get(to);
      if (ids === undefined) this.byUser.set(to, (ids = new Set()));
      ids.add(id);
    }
  }

  /** The entry of a session that has not expired, marked as used. */
  private live(id: string): Entry | undefined {
    let entry = this.established.get(id);
    if (entry !== undefined) {
      if (entry.record.expiresAt <= Date.now()) {
        this.remove(this.established, id, entry);
        return undefined;
      }
      if (this.clock - entry.tick > this.establishedCapacity >>> 1) {
        this.established.delete(id);
        entry.tick = ++this.clock;
        this.established.set(id, entry);
      }
      return entry;
    }
    entry = this.probation.get(id);
    if (entry === undefined) return undefined;
    if (entry.record.expiresAt <= Date.now()) {
      this.remove(this.probation, id, entry);
      return undefined;
    }
    this.probation.delete(id);
    this.promote(id, entry);
    return entry;
  }

  /** Moves a session used a second time out of probation; a full `established` hands its oldest back to probation. */
  private promote(id: string, entry: Entry): void {
    if (this.established.size >= this.establishedCapacity) {
      const oldest = this.established.entries().next();
      if (oldest.done !== true) {
        this.established.delete(oldest.value[0]);
        this.probation.set(oldest.value[0], oldest.value[1]);
      }
    }
    entry.tick = ++this.clock;
    this.established.set(id, entry);
  }

  private evict(): void {
    const segment = this.probation.size > 0 ? this.probation : this.established;
    const oldest = segment.entries().next();
    if (oldest.done !== true) this.remove(segment, oldest.value[0], oldest.value[1]);
  }

  /** How many session ids the user index holds, over all users (for tests of its upkeep). */
  get indexedSessions(): number {
    let count = 0;
    for (const ids of this.byUser.values()) count += ids.size;
    return count;
  }
}

function count(value: unknown, option: string, fallback: number, zeroAllowed = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < (zeroAllowed ? 0 : 1)) {
    throw new SessionConfigError(`${option} must be ${zeroAllowed ? 'a non-negative' : 'a positive'} integer, got ${JSON.stringify(value) ?? typeof value}`);
  }
  return value;
}

/** Flash messages as JSON gives them back, as every other store does: a message object the app changes later, or a Date, is not kept as it is. */
function ownMeta(meta: SessionMeta): SessionMeta {
  return meta.flash === undefined ? meta : { ...meta, flash: jsonCopy(meta.flash) };
}

function hasFlash(patch: SessionPatch): boolean {
  for (const _ in patch.flash.set) return true;
  return false;
}

function jsonCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
