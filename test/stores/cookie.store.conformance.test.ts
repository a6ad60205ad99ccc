import { describe, it } from 'vitest';
import { CookieStore } from '../../src/stores/cookie.store.js';
import { defineClientSessionStoreTests } from '../../src/testing/index.js';

defineClientSessionStoreTests({ describe, it }, (secrets) => new CookieStore({ secret: [...secrets] }), { title: 'CookieStore conformance' });
