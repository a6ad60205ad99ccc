import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, SessionConfigError, type SessionRecord } from '../../src/index.js';

const record = (value: number, expiresAt = Date.now() + 60_000): SessionRecord => ({
  data: Object.assign(Object.create(null) as Record<string, string>, { n: String(value) }),
  meta: { createdAt: Date.now() },
  expiresAt,
});

describe('MemoryStore', () => {
  afterEach(() => vi.useRealTimers());

  it('keeps at most maxSessions, evicting the least recently used first', () => {
    const store = new MemoryStore({ maxSessions: 3, sweepInterval: 0 });
    store.set('a', record(1));
    store.set('b', record(2));
    store.set('c', record(3));
    expect(store.get('a')?.data.n).toBe('1'); // a is now the most recently used
    store.set('d', record(4));
    expect(store.size).toBe(3);
    expect(store.get('b')).toBeUndefined();
    expect(store.get('a')?.data.n).toBe('1');
    expect(store.get('c')?.data.n).toBe('3');
    expect(store.get('d')?.data.n).toBe('4');
  });

  it('reclaims expired sessions on its sweep timer', () => {
    vi.useFakeTimers();
    const store = new MemoryStore({ sweepInterval: 1000 });
    store.set('old', record(1, Date.now() + 500));
    store.set('live', record(2, Date.now() + 5000));
    expect(store.size).toBe(2);
    vi.advanceTimersByTime(1000);
    expect(store.size).toBe(1);
    expect(store.get('live')?.data.n).toBe('2');
    store.close();
  });

  it('its sweep timer never keeps the process alive, and close() stops it', () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const store = new MemoryStore({ sweepInterval: 1000 });
    const timer = (store as unknown as { timer: NodeJS.Timeout }).timer;
    expect(timer.hasRef()).toBe(false);
    store.close();
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before);
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
