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
const appSource = (load) => `
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
  for (const [name, value] of Object.entries({ MemoryStore, CookieStore, FileStore, SessionConfigError, RedisStore: redis.RedisStore, PostgresStore: postgres.PostgresStore, defineSessionStoreTests: testing.defineSessionStoreTests, expressSessionReader: expressSession.expressSessionReader })) {
    if (typeof value !== 'function') throw new Error(name + ' is not exported');
  }
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
  console.log('ok');
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

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
      load: `import 'reflect-metadata';
import * as common from '@nestjs/common';
import * as core from '@nestjs/core';
import * as sessions from 'nest-sessions';
import * as redis from 'nest-sessions/redis';
import * as postgres from 'nest-sessions/postgres';
import * as testing from 'nest-sessions/testing';
import * as expressSession from 'nest-sessions/express-session';
import * as crypto from 'node:crypto';`,
    },
    cjs: {
      type: 'commonjs',
      file: 'main.cjs',
      load: `require('reflect-metadata');
const common = require('@nestjs/common');
const core = require('@nestjs/core');
const sessions = require('nest-sessions');
const redis = require('nest-sessions/redis');
const postgres = require('nest-sessions/postgres');
const testing = require('nest-sessions/testing');
const expressSession = require('nest-sessions/express-session');
const crypto = require('node:crypto');`,
    },
  };
  for (const [name, app] of Object.entries(apps)) {
    const dir = mkdtempSync(join(work, `${name}-`));
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `pack-${name}`, private: true, type: app.type }));
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...deps, 'ioredis', 'pg'], dir);
    writeFileSync(join(dir, app.file), appSource(app.load));
    const out = run('node', [app.file], dir).trim();
    if (out !== 'ok') throw new Error(`${name} app printed ${out}`);
    console.log(`pack test: the ${name === 'esm' ? 'ESM' : 'CommonJS'} app loads the tarball and serves a session (NestJS ${nestVersion})`);
  }
  console.log('pack test: 2 passed, 0 failed');
} finally {
  rmSync(work, { recursive: true, force: true });
}
