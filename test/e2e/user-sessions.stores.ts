import { MemoryStore, type SessionStore } from '../../src/index.js';

/** A kind of server-side store: its service checked once, a store per app, cleaned up after. */
export interface StoreKind {
  name: string;
  setup(): Promise<void>;
  /** A store of its own for `key` (keys, tables, directories named after it). */
  create(key: string): SessionStore;
  teardown(): Promise<void>;
}

const memory: StoreKind = {
  name: 'MemoryStore',
  setup: async () => undefined,
  create: () => new MemoryStore({ sweepInterval: 0 }),
  teardown: async () => undefined,
};

/** Every server-side store, each able to list a user's sessions. */
export const serverStoreKinds: StoreKind[] = [memory];
