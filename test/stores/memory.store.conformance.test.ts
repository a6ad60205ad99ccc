import { describe, it } from 'vitest';
import { MemoryStore } from '../../src/stores/memory.store.js';
import { defineSessionStoreTests } from '../../src/testing/index.js';

defineSessionStoreTests({ describe, it }, () => new MemoryStore({ sweepInterval: 0 }), {
  title: 'MemoryStore conformance',
  countSessions: (store) => store.size,
  countIndexed: (store) => store.indexedSessions,
});
