import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Fault tests under load (`npm run test:fault`): they start and kill their own store servers.
export default defineConfig({
  plugins: [swc.vite()],
  test: {
    include: ['test/fault/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 90_000,
    pool: 'forks',
    // The fault tests start their own servers; this serves any file that calls redisUrl() / postgresUrl().
    globalSetup: ['test/support/global-setup.ts'],
  },
});
