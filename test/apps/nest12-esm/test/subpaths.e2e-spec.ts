import { RedisStore } from 'nest-sessions/redis';
import { sessionStoreCaseNames } from 'nest-sessions/testing';

// The package's subpaths, as the app's TypeScript and vitest resolve them (no ioredis installed).
describe('nest-sessions subpaths', () => {
  it('nest-sessions/redis and nest-sessions/testing load', () => {
    const Store: new (...args: never[]) => RedisStore = RedisStore;
    expect(Store.name).toBe('RedisStore');
    expect(sessionStoreCaseNames.length).toBeGreaterThan(0);
  });
});
