import { describe, it } from 'vitest';
import { CookieStore } from '../../src/stores/cookie.store.js';
import { clientStoreAsSessionStore, defineSessionStoreTests } from '../../src/testing/index.js';

// A cookie holds about 4 KB in all, so the large-value and many-keys cases are sized to fit one.
defineSessionStoreTests(
  { describe, it },
  () => clientStoreAsSessionStore(new CookieStore({ secret: 'conformance-secret-of-32-or-more-characters' })),
  { maxValueBytes: 2048, title: 'CookieStore conformance' },
);
