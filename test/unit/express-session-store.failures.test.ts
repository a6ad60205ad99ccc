import { describe, expect, it } from 'vitest';
import { SessionStoreError } from '../../src/index.js';
import { fromExpressSessionStore, type ExpressSessionCompatibleStore } from '../../src/migration/express-session.js';
import type { SessionPatch, SessionRecord, SessionStore } from '../../src/stores/session-store.interface.js';

// What fromExpressSessionStore() promises and does not keep: a destroy() the store failed, and
// close() while writes of a session are still queued.

const LATER = 10 * 60_000;
const ID = 'AbC-_0123456789abcdefghijklmnopqrstuvwxyzAB'; // the engine's shape: 43 characters of base64url
const record = (data: Record<string, unknown> = { user: 'ada' }): SessionRecord => ({
  data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, JSON.stringify(value)])),
  meta: { createdAt: Date.now() },
  expiresAt: Date.now() + LATER,
});
const patch = (set: Record<string, unknown>): SessionPatch => ({
  set: Object.fromEntries(Object.entries(set).map(([key, value]) => [key, JSON.stringify(value)])),
  unset: [],
  flash: { set: {}, unset: [] },
  expiresAt: Date.now() + LATER,
});
const settle = async <T>(work: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> =>
  work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

/**
 * A callback store over a Map of JSON text, shared by every adapter made on it (the instances of an
 * app on one store). Each answer comes `delay` ms later; `failDestroys` of the next destroy() calls
 * fail without removing anything (the store is down); after `close()`, every call fails.
 */
class SharedStore implements ExpressSessionCompatibleStore {
  readonly sessions = new Map<string, string>();
  delay = 0;
  failDestroys = 0;
  closed = false;
  readonly afterClose: string[] = [];

  get(sid: string, callback: (error: unknown, value?: unknown) => void): void {
    if (this.refused(`get ${sid}`, callback)) return;
    const text = this.sessions.get(sid);
    this.later(() => callback(null, text === undefined ? null : JSON.parse(text)));
  }

  set(sid: string, value: unknown, callback?: (error?: unknown) => void): void {
    if (this.refused(`set ${sid}`, callback)) return;
    const text = JSON.stringify(value);
    this.later(() => {
      this.sessions.set(sid, text);
      callback?.(null);
    });
  }

  destroy(sid: string, callback?: (error?: unknown) => void): void {
    if (this.refused(`destroy ${sid}`, callback)) return;
    if (this.failDestroys > 0) {
      this.failDestroys--;
      this.later(() => callback?.(new Error('connection lost')));
      return;
    }
    this.later(() => {
      this.sessions.delete(sid);
      callback?.(null);
    });
  }

  close(callback: (error?: unknown) => void): void {
    this.closed = true;
    setImmediate(() => callback());
  }

  private refused(call: string, callback: ((error: unknown) => void) | undefined): boolean {
    if (!this.closed) return false;
    this.afterClose.push(call);
    setImmediate(() => callback?.(new Error('the store is closed')));
    return true;
  }

  private later(answer: () => void): void {
    if (this.delay === 0) setImmediate(answer);
    else setTimeout(answer, this.delay);
  }
}

describe('fromExpressSessionStore: a destroy() the store failed', () => {
  it('never reports a session as gone while the store still holds it, in this process or another', async () => {
    const shared = new SharedStore();
    const here: SessionStore = fromExpressSessionStore(shared);
    const there: SessionStore = fromExpressSessionStore(shared); // another instance of the app
    await here.set(ID, record());
    shared.failDestroys = 1;
    const logout = await settle(Promise.resolve(here.destroy(ID)));
    expect(logout.ok).toBe(false);
    expect(logout.ok ? undefined : logout.error).toBeInstanceOf(SessionStoreError);

    // The store still holds the session: every instance still serves it.
    expect(shared.sessions.has(ID)).toBe(true);
    expect(await there.get(ID)).toBeDefined();
    // This process must say so too (or fail the read), not report it gone: a retried logout reads
    // "no session", ends nothing, answers 200, and the session lives on everywhere else, and here
    // again once the tombstone is forgotten.
    const read = await settle(Promise.resolve(here.get(ID)));
    if (read.ok && read.value === undefined) {
      expect(shared.sessions.has(ID), 'get() said the session is gone while the store still holds it').toBe(false);
    }
  });
});

describe('fromExpressSessionStore: close()', () => {
  it.each([true, false])('lets the writes already asked for land before it returns (closeStore: %s)', async (closeStore) => {
    const shared = new SharedStore();
    const store = fromExpressSessionStore(shared, { closeStore });
    await store.set(ID, record());
    shared.delay = 30;
    // A request's save and a logout of the same session, queued one behind the other, when the app
    // shuts down (the engine waits for neither a destroy nor a write it already gave up on).
    const save = settle(Promise.resolve(store.patch(ID, patch({ note: 'saved before the shutdown' }))));
    await new Promise((resolve) => setImmediate(resolve)); // the save has read the session
    const logout = settle(Promise.resolve(store.destroy(ID)));
    await store.close?.();
    // closeStore: false: the app closes the client it gave the store once app.close() has resolved.
    if (!closeStore) shared.close(() => {});
    await Promise.all([save, logout]);

    expect(shared.afterClose, 'calls that reached the store after it was closed').toEqual([]);
    expect((await logout).ok).toBe(true);
    expect(shared.sessions.has(ID), 'the logout was lost at shutdown: the session is still in the store').toBe(false);
  });
});
