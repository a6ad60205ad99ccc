import { mkdtempSync, rmSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../../src/stores/file.store.js';

/** Runs once just before the store's next `open()` of a file in a user's index directory. */
const hooks = vi.hoisted(() => ({ beforeMarker: undefined as ((path: string) => Promise<void>) | undefined }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof fs.open = async (path, ...rest) => {
    const hook = hooks.beforeMarker;
    if (hook !== undefined && /[\\/]users[\\/][0-9a-f]{64}[\\/]/.test(String(path))) {
      hooks.beforeMarker = undefined;
      await hook(String(path));
    }
    return fs.open(path, ...rest);
  };
  return { ...fs, open };
});

const base = mkdtempSync(join(tmpdir(), 'file-store-race-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe('FileStore user index against its sweep', () => {
  it("keeps a session listed when a sweep removes its user's empty directory between making it and writing the marker", async () => {
    const directory = join(base, 'sessions');
    const store = new FileStore({ directory, sweepInterval: 0 });
    try {
      const tied = { data: { a: '1' }, meta: { createdAt: Date.now(), user: { id: 'ada' } }, expiresAt: Date.now() + 60_000 };
      // What the sweep of this or another process does to a user directory it found empty.
      hooks.beforeMarker = async (path) => rmdir(dirname(path));
      await store.set('one', tied);
      expect(hooks.beforeMarker).toBeUndefined(); // the race did happen
      expect((await store.listByUser('ada')).map((entry) => entry.id)).toEqual(['one']);
    } finally {
      await store.close();
    }
  });
});
