// Packs the library and loads the tarball from a fresh ESM app and a fresh CommonJS app, each
// serving one session route over HTTP on Express: what a user installing from npm gets.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const nestVersion = JSON.parse(readFileSync(join(root, 'node_modules/@nestjs/core/package.json'), 'utf8')).version;
const work = mkdtempSync(join(tmpdir(), 'nest-sessions-pack-'));

function run(cmd, args, cwd) {
  const result = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd}:\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

// The app: a controller with one @Session() route, decorators applied as functions (plain JS).
const appSource = (load, here) => `
${load}
const { Controller, Get, Module } = common;
const { NestFactory } = core;
const { SessionModule, Session, MemoryStore, CookieStore, FileStore, SessionConfigError } = sessions;

class CounterController {
  count(session) {
    const visits = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}
Session()(CounterController.prototype, 'count', 0);
Get('count')(CounterController.prototype, 'count', Object.getOwnPropertyDescriptor(CounterController.prototype, 'count'));
Controller()(CounterController);
class AppModule {}
// An express-session session (as connect-redis would hand it over) moved in by the reader.
const oldText = JSON.stringify({ cookie: { originalMaxAge: null, expires: null }, visits: 5 });
const oldStore = { eval: async (script) => (script.includes("'SET'") ? 1 : [oldText, 60000]) };
const migrateFrom = expressSession.expressSessionReader({ secret: 'old-secret', redis: oldStore });
Module({ imports: [SessionModule.forRoot({ secret: 'x'.repeat(40), migrateFrom })], controllers: [CounterController] })(AppModule);

async function main() {
  for (const [name, value] of Object.entries({ MemoryStore, CookieStore, FileStore, SessionConfigError, RedisStore: redis.RedisStore, PostgresStore: postgres.PostgresStore, defineSessionStoreTests: testing.defineSessionStoreTests, expressSessionReader: expressSession.expressSessionReader, fromExpressSessionStore: expressSession.fromExpressSessionStore, encodeStoreKey: store.encodeStoreKey, decodeStoreKey: store.decodeStoreKey })) {
    if (typeof value !== 'function') throw new Error(name + ' is not exported');
  }
  if (typeof testing.SESSION_MODULE_OPTIONS !== 'symbol') throw new Error('SESSION_MODULE_OPTIONS is not exported by nest-sessions/testing');
  // What a store author needs is in nest-sessions/store and the test token in nest-sessions/testing, not in the root.
  for (const name of ['encodeStoreKey', 'decodeStoreKey', 'SESSION_MODULE_OPTIONS', 'DEFAULT_SESSION']) {
    if (name in sessions) throw new Error(name + ' is still exported by the root entry point');
  }
  if (store.decodeStoreKey(store.encodeStoreKey('a\\u0000b')) !== 'a\\u0000b') throw new Error('nest-sessions/store: encodeStoreKey does not round-trip');
  if (typeof health.SessionHealthIndicator !== 'function') throw new Error('SessionHealthIndicator is not exported by nest-sessions/health');
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  const first = await fetch(url + '/count');
  const cookie = first.headers.get('set-cookie');
  if (!cookie || !cookie.startsWith('sid=')) throw new Error('no session cookie: ' + cookie);
  const second = await fetch(url + '/count', { headers: { cookie: cookie.split(';')[0] } });
  const body = await second.json();
  const oldCookie = 'connect.sid=' + encodeURIComponent('s:old-id.' + crypto.createHmac('sha256', 'old-secret').update('old-id').digest('base64').replace(/=+$/, ''));
  const migrated = await fetch(url + '/count', { headers: { cookie: oldCookie } });
  const migratedBody = await migrated.json();
  const cleared = migrated.headers.getSetCookie().some((each) => each.startsWith('connect.sid=;'));
  await app.close();
  if (body.visits !== 2) throw new Error('expected 2 visits, got ' + JSON.stringify(body));
  if (migratedBody.visits !== 6 || !cleared) throw new Error('the express-session reader did not move the old session in: ' + JSON.stringify(migratedBody));
  // One copy of the package's state whichever way it is reached: require() and import() give the
  // same classes, the subpaths included.
  const imported = await import('nest-sessions');
  const required = createRequire(${here})('nest-sessions');
  for (const name of ['SessionModule', 'SessionService', 'SessionConfigError', 'MemoryStore', 'Session']) {
    if (imported[name] !== sessions[name] || required[name] !== sessions[name]) throw new Error(name + ' exists twice: require() and import() gave two copies');
  }
  if ((await import('nest-sessions/redis')).RedisStore !== redis.RedisStore) throw new Error('RedisStore exists twice');
  if (createRequire(${here})('nest-sessions/testing').defineSessionStoreTests !== testing.defineSessionStoreTests) throw new Error('the testing kit exists twice');
  // The token a test overrides must be the very one the module provides, however the test reaches it.
  if ((await import('nest-sessions/testing')).SESSION_MODULE_OPTIONS !== createRequire(${here})('nest-sessions/testing').SESSION_MODULE_OPTIONS) throw new Error('SESSION_MODULE_OPTIONS exists twice');
  if ((await import('nest-sessions/store')).encodeStoreKey !== createRequire(${here})('nest-sessions/store').encodeStoreKey) throw new Error('nest-sessions/store exists twice');
  console.log('ok');
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

// The README's types file: a module (`export {}`), so that it augments the package.
const TYPES_FILE = `export {};
declare module 'nest-sessions' {
  interface SessionData { userId: number; visits: number }
  interface FlashMessages { info: string }
}
`;

const TS_APP = `import 'reflect-metadata';
import { Controller, Get, Module, Post } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { Flash, MemoryStore, Session, SessionConfigError, SessionModule, SessionService, UseSession } from 'nest-sessions';
import { RedisStore } from 'nest-sessions/redis';
import { PostgresStore } from 'nest-sessions/postgres';
import { expressSessionReader, fromExpressSessionStore } from 'nest-sessions/express-session';
import { SessionHealthIndicator, type SessionHealthResult } from 'nest-sessions/health';
import { defineSessionStoreTests, SESSION_MODULE_OPTIONS, type SessionStoreFactory } from 'nest-sessions/testing';
import { decodeStoreKey, encodeStoreKey, type SessionPatch, type SessionRecord, type SessionStore } from 'nest-sessions/store';
// @ts-expect-error the store contract is in nest-sessions/store, not in the root
import type { SessionStore as NotInTheRoot } from 'nest-sessions';

@Controller()
export class CounterController {
  constructor(private readonly sessions: SessionService) {}

  @Get('count')
  count(@Session() session: Session) {
    const visits: number = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits);
    // @ts-expect-error the types file makes visits a number
    session.set('visits', 'one');
    return { visits };
  }

  @Post('login')
  @UseSession()
  async login(@Session() session: Session, @Flash() flash: Flash) {
    await session.regenerate();
    session.set('userId', 42);
    flash.add('info', 'Welcome back');
    return { same: this.sessions.current() === session };
  }
}

export const stores = [
  new MemoryStore(),
  new RedisStore({ client: new Redis({ lazyConnect: true }) }),
  new PostgresStore({ pool: new Pool() }),
  // An express-session store as express-session calls it: callbacks.
  fromExpressSessionStore({
    get: (_sid: string, callback: (error: unknown, session?: unknown) => void) => callback(null, null),
    set: (_sid: string, _session: unknown, callback?: (error?: unknown) => void) => callback?.(),
    destroy: (_sid: string, callback?: (error?: unknown) => void) => callback?.(),
  }),
];
export const factory: SessionStoreFactory = () => new MemoryStore();
export const healthCheck = (indicator: SessionHealthIndicator): Promise<SessionHealthResult<'sessions'>> => indicator.isHealthy('sessions', { timeout: 1000 });
// A store of one's own, written against nest-sessions/store.
export class MapStore implements SessionStore {
  readonly sessions = new Map<string, SessionRecord>();
  get(id: string) {
    return this.sessions.get(encodeStoreKey(id));
  }
  set(id: string, record: SessionRecord) {
    this.sessions.set(encodeStoreKey(id), record);
  }
  patch(id: string, patch: SessionPatch) {
    const old = this.get(id);
    if (old !== undefined) this.sessions.set(encodeStoreKey(id), { ...old, data: { ...old.data, ...patch.set }, expiresAt: patch.expiresAt });
  }
  touch() {}
  destroy(id: string) {
    this.sessions.delete(encodeStoreKey(id));
  }
  ids() {
    return [...this.sessions.keys()].map(decodeStoreKey);
  }
}
export const own = SessionModule.forRoot({ store: new MapStore() });
export const token: symbol = SESSION_MODULE_OPTIONS;
export const kit: typeof defineSessionStoreTests = defineSessionStoreTests;
export const errors: (typeof SessionConfigError)[] = [SessionConfigError];

@Module({
  imports: [SessionModule.forRoot({ secret: process.env.SESSION_SECRET, migrateFrom: expressSessionReader({ secret: 'old', redis: new Redis({ lazyConnect: true }) }) })],
  controllers: [CounterController],
})
export class AppModule {}
`;

let passed = 0;
try {
  const tarball = join(work, execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop());
  const deps = [
    tarball,
    `@nestjs/common@${nestVersion}`,
    `@nestjs/core@${nestVersion}`,
    `@nestjs/platform-express@${nestVersion}`,
    `reflect-metadata@${own.devDependencies['reflect-metadata']}`,
    `rxjs@${own.devDependencies.rxjs}`,
  ];
  const apps = {
    esm: {
      type: 'module',
      file: 'main.mjs',
      here: 'import.meta.url',
      load: `import 'reflect-metadata';
import * as common from '@nestjs/common';
import * as core from '@nestjs/core';
import * as sessions from 'nest-sessions';
import * as redis from 'nest-sessions/redis';
import * as postgres from 'nest-sessions/postgres';
import * as testing from 'nest-sessions/testing';
import * as health from 'nest-sessions/health';
import * as store from 'nest-sessions/store';
import * as expressSession from 'nest-sessions/express-session';
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';`,
    },
    cjs: {
      type: 'commonjs',
      file: 'main.cjs',
      here: '__filename',
      load: `require('reflect-metadata');
const common = require('@nestjs/common');
const core = require('@nestjs/core');
const sessions = require('nest-sessions');
const redis = require('nest-sessions/redis');
const postgres = require('nest-sessions/postgres');
const testing = require('nest-sessions/testing');
const health = require('nest-sessions/health');
const store = require('nest-sessions/store');
const expressSession = require('nest-sessions/express-session');
const crypto = require('node:crypto');
const { createRequire } = require('node:module');`,
    },
  };
  for (const [name, app] of Object.entries(apps)) {
    const dir = mkdtempSync(join(work, `${name}-`));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `pack-${name}`, private: true, type: app.type }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...deps, 'ioredis', 'pg'], dir);
    writeFileSync(join(dir, app.file), appSource(app.load, app.here));
    const out = run('node', [app.file], dir).trim();
    if (out !== 'ok') throw new Error(`${name} app printed ${out}`);
    console.log(`pack test: the ${name === 'esm' ? 'ESM' : 'CommonJS'} app loads the tarball and serves a session (NestJS ${nestVersion})`);
  }
  passed += 2;

  // Without the optional peers: every entry point loads, and a store that needs one says which.
  {
    const dir = mkdtempSync(join(work, 'no-peers-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'pack-no-peers', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...deps], dir);
    writeFileSync(
      join(dir, 'main.cjs'),
      `require('reflect-metadata');
const { RedisStore } = require('nest-sessions/redis');
require('nest-sessions/postgres');
require('nest-sessions/express-session');
require('nest-sessions/testing');
require('nest-sessions/health');
require('nest-sessions/store');
try {
  new RedisStore({ url: 'redis://127.0.0.1:6379' });
  console.log('no error');
} catch (error) {
  console.log(error.name + ': ' + error.message);
}`,
    );
    const out = run('node', ['main.cjs'], dir).trim();
    const expected = "SessionConfigError: RedisStore with `url` needs the 'ioredis' package, which is not installed: run `npm install ioredis`";
    if (out !== expected) throw new Error(`without ioredis, expected\n  ${expected}\ngot\n  ${out}`);
    console.log('pack test: without ioredis and pg, every entry point loads and RedisStore names the package to install');
    passed += 1;
  }

  // TypeScript apps: every entry point resolves, with its types, under the module settings users
  // have (nest new's nodenext in a CommonJS package, an older commonjs/node10, an ES module), on
  // TypeScript 5 and 6; the types file of the README augments the package instead of replacing it.
  {
    const dir = mkdtempSync(join(work, 'typescript-'));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'pack-typescript', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...deps, 'ioredis', 'pg', `@types/pg@${own.devDependencies['@types/pg']}`, '@types/node@24', 'typescript@5.9.3'], dir);
    const ts6 = mkdtempSync(join(work, 'typescript6-'));
    writeFileSync(join(ts6, 'package.json'), JSON.stringify({ name: 'pack-typescript6', private: true }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', 'typescript@6.0.3'], ts6);
    writeFileSync(join(dir, 'session-types.ts'), TYPES_FILE);
    writeFileSync(join(dir, 'main.ts'), TS_APP);
    writeFileSync(join(dir, 'main.mts'), TS_APP);
    const base = { strict: true, noEmit: true, skipLibCheck: true, experimentalDecorators: true, emitDecoratorMetadata: true, target: 'ES2023', types: ['node'] };
    const variants = [
      ['nodenext, CommonJS package (nest new)', { module: 'nodenext', moduleResolution: 'nodenext', resolvePackageJsonExports: true }, 'main.ts', ['5', '6']],
      ['commonjs + node10', { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true }, 'main.ts', ['5']],
      ['nodenext, an ES module', { module: 'nodenext', moduleResolution: 'nodenext' }, 'main.mts', ['5', '6']],
    ];
    for (const [label, options, file, versions] of variants) {
      for (const version of versions) {
        const config = join(dir, 'tsconfig.json');
        writeFileSync(config, JSON.stringify({ compilerOptions: { ...base, ...options }, files: ['session-types.ts', file] }));
        const tsc = version === '5' ? join(dir, 'node_modules/typescript/bin/tsc') : join(ts6, 'node_modules/typescript/bin/tsc');
        run('node', [tsc, '-p', config], dir);
        console.log(`pack test: a TypeScript ${version} app (${label}) compiles against every entry point`);
        passed += 1;
      }
    }
    // Are the types wrong? Resolution of every entry point under node10, node16 (CJS and ESM), bundler.
    run('node', [join(root, 'node_modules/@arethetypeswrong/cli/dist/index.js'), tarball, '--format', 'table-flipped'], root);
    console.log('pack test: @arethetypeswrong/cli finds no problem in the tarball');
    passed += 1;
  }
  console.log(`pack test: ${passed} passed, 0 failed`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
