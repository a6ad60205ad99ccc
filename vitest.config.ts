import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [swc.vite()],
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/browser/**', 'test/fault/**', 'node_modules/**'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Starts a throw-away Redis and PostgreSQL for the files that ask for them (test/support/services.ts).
    globalSetup: ['test/support/global-setup.ts'],
  },
});
