import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 8192;
let pool = Buffer.alloc(0);
let offset = 0;

/**
 * `size` bytes from the OS CSPRNG, drawn from a pool filled a few kilobytes at a time: one system
 * call serves hundreds of ids and IVs. Every byte is handed out once; a refill is a new buffer, so
 * what was handed out never changes.
 */
export function randomSlice(size: number): Buffer {
  if (offset + size > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafeSlow(Math.max(POOL_SIZE, size)));
    offset = 0;
  }
  const slice = pool.subarray(offset, offset + size);
  offset += size;
  return slice;
}
