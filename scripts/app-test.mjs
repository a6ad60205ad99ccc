// Runs the `nest new` apps of test/apps/ against the packed tarball, on several Node versions: each
// app is copied to a temp dir, installed from its own lock file (`npm ci`), given the tarball as a
// user gives it `npm install nest-sessions`, then built, type-checked (its own tsc and tsconfig,
// test files included) and tested with its own npm scripts, the chosen Node first on PATH.
//
//   node scripts/app-test.mjs
//   APP_TEST_ONLY=nest11@22,nest12 node scripts/app-test.mjs   (pairs or whole apps)
//   APP_TEST_KEEP=1 keeps the temp dirs; APP_TEST_JOBS=2 runs two pairs at a time.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, join, resolve } from 'node:path';
import { nodeBinary } from './node-versions.mjs';

const root = resolve(import.meta.dirname, '..');
const apps = join(root, 'test', 'apps');
// nest12 needs Node 24.9+: its jest runs under --experimental-vm-modules, whose require(esm) is
// what loads NestJS 12 (ESM-only) into its CommonJS tests.
const matrix = { nest11: [20, 22, 24], nest12: [24] };
const STEP_TIMEOUT = 5 * 60_000;

const only = (process.env.APP_TEST_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const pairs = Object.entries(matrix)
  .flatMap(([app, majors]) => majors.map((major) => ({ app, major, name: `${app}@${major}` })))
  .filter((pair) => only.length === 0 || only.includes(pair.name) || only.includes(pair.app));
if (pairs.length === 0) {
  console.error(`app test: APP_TEST_ONLY=${process.env.APP_TEST_ONLY} matches none of ${Object.entries(matrix).flatMap(([a, ms]) => ms.map((m) => `${a}@${m}`)).join(', ')}`);
  process.exit(2);
}

const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** Runs a command to its end; never throws. Output is stdout and stderr as they came. */
function run(cmd, args, { cwd, env }) {
  return new Promise((done) => {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => {
      output += `\n[app test: killed after ${seconds(STEP_TIMEOUT)}]\n`;
      child.kill('SIGKILL');
    }, STEP_TIMEOUT);
    child.on('error', (error) => (output += `\n${error.message}\n`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ ok: code === 0, code: code ?? signal, output, ms: Date.now() - started });
    });
  });
}

async function runPair(pair, tarball, bin, work) {
  const started = Date.now();
  const dir = join(work, pair.name.replace('@', '-node'));
  cpSync(join(apps, pair.app), dir, {
    recursive: true,
    filter: (src) => !['node_modules', 'dist', 'coverage'].includes(basename(src)) && !src.endsWith('.tsbuildinfo'),
  });
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` };
  // What the app's own tools decide from NODE_ENV (jest sets "test" when it is unset, npm ci skips
  // devDependencies under "production") must not depend on the shell this runs from; nor what an
  // `npm run` around this script leaves behind (its package, its Node, an --omit).
  delete env.NODE_ENV;
  for (const key of Object.keys(env)) {
    if (/^npm_(package_|lifecycle_|node_execpath$|config_(omit|include|production|only)$)/i.test(key)) delete env[key];
  }
  const npmFlags = ['--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
  const steps = [
    ['install', 'npm', ['ci', ...npmFlags]],
    ['install nest-sessions', 'npm', ['install', ...npmFlags, tarball]],
    ['build', 'npm', ['run', 'build']],
    ['typecheck', 'npx', ['--no-install', 'tsc', '--noEmit', '-p', 'tsconfig.json']],
    ['test', 'npm', ['test']],
    ['test:e2e', 'npm', ['run', 'test:e2e']],
  ];
  const result = { ...pair, steps: [], failures: [] };
  const version = await run('node', ['-p', 'process.version'], { cwd: dir, env });
  result.node = version.output.trim();
  if (!version.ok || !result.node.startsWith(`v${pair.major}.`)) {
    result.failures.push({ step: 'node', output: `expected Node ${pair.major} first on PATH, got: ${version.output}` });
  } else {
    for (const [step, cmd, args] of steps) {
      const outcome = await run(cmd, args, { cwd: dir, env });
      result.steps.push(`${step} ${seconds(outcome.ms)}${outcome.ok ? '' : ' FAILED'}`);
      if (!outcome.ok) {
        result.failures.push({ step, output: `$ ${cmd} ${args.join(' ')}  (exit ${outcome.code})\n${outcome.output}` });
        if (step.startsWith('install')) break; // nothing to build or test
      }
    }
    try {
      const version = (name) => JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
      result.versions = `NestJS ${version('@nestjs/core')}, TypeScript ${version('typescript')}, jest ${version('jest')}`;
    } catch {
      result.versions = 'not installed';
    }
  }
  result.ms = Date.now() - started;
  return result;
}

const started = Date.now();
const work = mkdtempSync(join(tmpdir(), 'nest-sessions-apps-'));
const results = [];
try {
  // The tarball a user gets: `npm pack` builds nothing (no prepack), so build first.
  console.log('app test: building and packing nest-sessions');
  let tarball;
  try {
    execFileSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const packed = execFileSync('npm', ['pack', '--silent', '--pack-destination', work], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    tarball = join(work, packed.trim().split('\n').pop());
  } catch (error) {
    console.log(`app test: the package did not build or pack:\n${error.stdout ?? ''}${error.stderr ?? error.message}`);
    console.log(`app test: 0 passed, ${pairs.length} failed`);
    process.exit(1);
  }
  const bins = new Map();
  for (const major of new Set(pairs.map((pair) => pair.major))) {
    bins.set(major, await nodeBinary(major, { log: (line) => console.log(`app test: ${line}`) }));
  }
  console.log(`app test: ${basename(tarball)}; ${pairs.map((pair) => pair.name).join(', ')}`);

  const queue = [...pairs];
  const jobs = Math.max(1, Number(process.env.APP_TEST_JOBS) || 1);
  await Promise.all(
    Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let pair = queue.shift(); pair; pair = queue.shift()) {
        const result = await runPair(pair, tarball, bins.get(pair.major), work);
        results.push(result);
        const ok = result.failures.length === 0;
        console.log(`${ok ? 'PASS' : 'FAIL'} ${result.name} (Node ${result.node}; ${result.versions ?? '?'}) in ${seconds(result.ms)}: ${result.steps.join(', ')}`);
        for (const failure of result.failures) {
          console.log(`---- ${result.name}: ${failure.step} failed ----\n${failure.output.trimEnd()}\n---- end of ${result.name} ${failure.step} ----`);
        }
      }
    }),
  );
} finally {
  if (process.env.APP_TEST_KEEP) console.log(`app test: kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

const failed = results.filter((result) => result.failures.length > 0);
console.log(`app test: ${pairs.length} pairs in ${seconds(Date.now() - started)}${failed.length ? `; failed: ${failed.map((r) => `${r.name} (${r.failures.map((f) => f.step).join(', ')})`).join(', ')}` : ''}`);
console.log(`app test: ${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length > 0 ? 1 : 0);
