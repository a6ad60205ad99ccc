import { vi } from 'vitest';

/** Moves `Date.now()` forward for the library and its stores, leaving timers and sockets alone. */
export function shiftableClock() {
  const realNow = Date.now.bind(Date);
  let offset = 0;
  const spy = vi.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
  return {
    advance(ms: number) {
      offset += ms;
    },
    restore() {
      spy.mockRestore();
    },
  };
}
