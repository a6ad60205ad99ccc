import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, SessionConfigError } from '../../src/index.js';
import type { SessionRecord } from '../../src/store.js';

const record = (value: number, expiresAt = Date.now() + 60_000): SessionRecord => ({
  data: Object.assign(Object.create(null) as Record<string, string>, { n: String(value) }),
  meta: { createdAt: Date.now() },
  expiresAt,
});

describe('MemoryStore', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('keeps at most maxSessions, evicting a session used once before one used again', () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    store.set('a', record(1));
    store.set('b', record(2));
    store.set('c', record(3));
    expect(store.get('a')?.data.n).toBe('1'); // a is used again: no longer first to go
    store.set('d', record(4));
    expect(store.size).toBe(3);
    expect(store.get('b')).toBeUndefined();
    expect(store.get('a')?.data.n).toBe('1');
    expect(store.get('c')?.data.n).toBe('3');
    expect(store.get('d')?.data.n).toBe('4');
  });

  it('keeps signed-in sessions through a flood of maxSessions one-request sessions (default size)', () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    const signedIn = Array.from({ length: 2000 }, (_, i) => `user-${i}`);
    for (const id of signedIn) store.set(id, record(1)); // the login request
    for (const id of signedIn) expect(store.get(id)).toBeDefined(); // a second request
    const once = record(0);
    for (let i = 0; i < store.maxSessions; i++) store.set(`visitor-${i}`, once); // cookieless clients whose handler writes
    expect(store.size).toBe(store.maxSessions);
    const lost = signedIn.filter((id) => store.get(id) === undefined);
    expect(lost).toEqual([]);
  });

  it('still evicts sessions in use once more of them than it can hold keep coming back', () => {
    const store = new MemoryStore({ maxSessions: 10, sweepInterval: 0 });
    for (let i = 0; i < 30; i++) {
      store.set(`s${i}`, record(i));
      expect(store.get(`s${i}`)).toBeDefined();
      expect(store.size).toBeLessThanOrEqual(10);
    }
    expect(store.get('s0')).toBeUndefined();
    expect(store.get('s29')?.data.n).toBe('29');
  });

  it('destroy removes a session whether it was used once or again', () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    store.set('once', record(1));
    store.set('again', record(2));
    store.get('again');
    store.destroy('once');
    store.destroy('again');
    expect(store.get('once')).toBeUndefined();
    expect(store.get('again')).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('reclaims expired sessions on its sweep timer, in both segments', () => {
    vi.useFakeTimers();
    const store = new MemoryStore({ sweepInterval: 1000 });
    store.set('old', record(1, Date.now() + 500));
    store.set('used', record(2, Date.now() + 500));
    store.get('used');
    store.set('live', record(3, Date.now() + 5000));
    expect(store.size).toBe(3);
    vi.advanceTimersByTime(1000);
    expect(store.size).toBe(1);
    expect(store.get('live')?.data.n).toBe('3');
    store.close();
  });

  it('its sweep timer never keeps the process alive', () => {
    const setInterval = vi.spyOn(globalThis, 'setInterval');
    const store = new MemoryStore({ sweepInterval: 1000 });
    const timer = setInterval.mock.results.at(-1)?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    store.close();
  });

  it('close() stops the sweep timer', () => {
    vi.useFakeTimers();
    const clearInterval = vi.spyOn(globalThis, 'clearInterval');
    const store = new MemoryStore({ sweepInterval: 1000 });
    store.set('old', record(1, Date.now() + 500));
    store.close();
    expect(clearInterval).toHaveBeenCalledTimes(1);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(5000);
    expect(store.size).toBe(1); // no sweep ran after close()
  });

  it('never returns an expired session even before the sweep', () => {
    const store = new MemoryStore({ sweepInterval: 0 });
    store.set('x', record(1, Date.now() - 1));
    expect(store.get('x')).toBeUndefined();
    expect(store.size).toBe(0);
  });

  it('refuses bad options with a SessionConfigError naming them', () => {
    expect(() => new MemoryStore({ maxSessions: 0 })).toThrow(SessionConfigError);
    expect(() => new MemoryStore({ maxSessions: 0 })).toThrow(/MemoryStore maxSessions must be a positive integer/);
    expect(() => new MemoryStore({ sweepInterval: -1 })).toThrow(/MemoryStore sweepInterval must be a non-negative integer/);
  });
});
