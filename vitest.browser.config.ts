import { defineConfig } from 'vitest/config';

// The real-browser test of the sample app. `npm run test:browser` builds the library and the
// sample first; the test starts the built sample and drives the system's Chromium.
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
