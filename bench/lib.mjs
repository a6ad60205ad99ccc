// Helpers shared by run.mjs, micro.mjs and soak.mjs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const ROOT_DIR = dirname(BENCH_DIR);
export const RESULTS_MD = join(BENCH_DIR, 'RESULTS.md');
export const RESULTS_DIR = join(BENCH_DIR, 'results');
/**
 * The nest-sessions build the benches load: the root's dist/ by default; NEST_SESSIONS_DIST points
 * elsewhere (e.g. the dist/ of a clean `git worktree add` of HEAD while src/ is mid-change). That
 * build must resolve the same @nestjs packages (a worktree can symlink its node_modules to the root's).
 */
export const DIST_DIR = resolve(process.env.NEST_SESSIONS_DIST ?? join(ROOT_DIR, 'dist'));
/** A module of that build, for `await import(distUrl('index.js'))`. */
export const distUrl = (path) => pathToFileURL(join(DIST_DIR, path)).href;

/** Installs the bench's own dependencies when bench/node_modules is missing, and checks the build. */
export function ensureBenchDeps() {
  if (!existsSync(join(BENCH_DIR, 'node_modules'))) {
    console.log('bench/node_modules is missing: npm ci --prefix bench');
    execFileSync('npm', ['ci', '--prefix', BENCH_DIR, '--no-audit', '--no-fund'], { stdio: 'inherit', cwd: ROOT_DIR });
  }
  if (!existsSync(join(DIST_DIR, 'index.js'))) {
    throw new Error(`${join(DIST_DIR, 'index.js')} is missing: run \`npm run build\` at the root first (the npm scripts do), or point NEST_SESSIONS_DIST at a build.`);
  }
}

export function distHas(path) {
  return existsSync(join(DIST_DIR, path));
}

export function env(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return value;
}

function version(pkg, from) {
  for (const base of from) {
    const file = join(base, 'node_modules', pkg, 'package.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')).version;
  }
  return 'absent';
}

/** Versions of everything measured, from the installs actually used. */
export function versions() {
  const bench = [BENCH_DIR];
  const root = [ROOT_DIR];
  const rootPkg = JSON.parse(readFileSync(join(ROOT_DIR, 'package.json'), 'utf8'));
  return {
    node: process.version,
    'nest-sessions': process.env.NEST_SESSIONS_DIST === undefined
      ? `${rootPkg.version} (this checkout's dist/, commit ${gitCommit(ROOT_DIR)})`
      : `${rootPkg.version} (${DIST_DIR}, commit ${gitCommit(dirname(DIST_DIR))})`,
    '@nestjs/core': version('@nestjs/core', root),
    '@nestjs/platform-express': version('@nestjs/platform-express', root),
    '@nestjs/platform-fastify': version('@nestjs/platform-fastify', root),
    express: version('express', root),
    fastify: version('fastify', root),
    ioredis: version('ioredis', root),
    pg: version('pg', root),
    '@fastify/secure-session': version('@fastify/secure-session', bench),
    '@fastify/session': version('@fastify/session', bench),
    '@fastify/cookie': version('@fastify/cookie', bench),
    'nestjs-session': version('nestjs-session', bench),
    'express-session': version('express-session', bench),
    'connect-redis': version('connect-redis', bench),
    redis: version('redis', bench),
    'cookie-session': version('cookie-session', bench),
    'iron-session': version('iron-session', bench),
    'sodium-native': version('sodium-native', bench),
    '@noble/ciphers': version('@noble/ciphers', bench),
    'libsodium-wrappers': version('libsodium-wrappers', bench),
    'cookie-signature': version('cookie-signature', bench),
    tinybench: version('tinybench', bench),
  };
}

function gitCommit(dir) {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: dir, encoding: 'utf8' }).trim();
    return dirty === '' ? sha : `${sha} + uncommitted changes in src/`;
  } catch {
    return 'unknown';
  }
}

export function machine() {
  const list = cpus();
  return `${list.length} × ${list[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}`;
}

export function loadAverage() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

/**
 * Replaces (or adds) one section of bench/RESULTS.md, delimited by HTML comments, so that
 * run, micro and soak each keep their latest output side by side.
 */
export function writeSection(name, markdown) {
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const order = ['run', 'micro', 'soak', 'profile', 'store-cost', 'sweep', 'failover'];
  let text = existsSync(RESULTS_MD)
    ? readFileSync(RESULTS_MD, 'utf8')
    : '# nest-sessions benchmark results\n\nWritten by `npm run bench`, `npm run bench:micro` and `npm run bench:soak` (see bench/README.md); each command replaces its own section.\n';
  const block = `${begin}\n${markdown.trim()}\n${end}`;
  const at = text.indexOf(begin);
  const stop = text.indexOf(end);
  if (at !== -1 && stop !== -1) {
    text = text.slice(0, at) + block + text.slice(stop + end.length);
  } else {
    // Keep the sections in a fixed order whatever order the commands ran in.
    const later = order.slice(order.indexOf(name) + 1).map((n) => text.indexOf(`<!-- ${n}:begin -->`)).filter((i) => i !== -1);
    const insertAt = later.length > 0 ? Math.min(...later) : text.length;
    text = `${text.slice(0, insertAt).trimEnd()}\n\n${block}\n\n${text.slice(insertAt).trimStart()}`;
  }
  writeFileSync(RESULTS_MD, `${text.trimEnd()}\n`);
}

export function saveRaw(prefix, data) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${prefix}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(data, null, 2));
  return file;
}

export const fmt = {
  ratio: (v) => (Number.isFinite(v) ? v.toFixed(2) : '—'),
  us: (v) => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(1)}` : '—'),
  int: (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '—'),
  fixed: (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : '—'),
};
