// Runs the `nest new` apps of test/apps/ against the packed tarball, on several Node versions: each
// app is copied to a temp dir, installed from its own lock file (`npm ci`), given the tarball as a
// user gives it `npm install nest-sessions`, then built, type-checked (its own tsc and tsconfig,
// test files included) and tested with its own npm scripts, the chosen Node first on PATH.
//
// The `readme-` pairs make the app the README's instead: the files that the README's "Quick start" and
// docs/testing.md name in their examples' first line (`// src/app.module.ts`, `// test/app.e2e-spec.ts`)
// are written into the copy as they stand, extracted as check-examples.mjs extracts them; the app's
// files that no longer serve (a controller the README's module does not import, its spec) and its
// own tests of its routes are removed, the packages those examples import beyond the app's are
// installed with nest-sessions (@nestjs/* at the app's NestJS major), and the same steps run.
//
//   node scripts/app-test.mjs
//   APP_TEST_ONLY=nest11@22,nest12 node scripts/app-test.mjs   (pairs, whole apps, or `readme`)
//   APP_TEST_KEEP=1 keeps the temp dirs; APP_TEST_JOBS=2 runs two pairs at a time.
import { execFileSync, spawn } from 'node:child_process';
import { builtinModules } from 'node:module';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, posix, resolve } from 'node:path';
import ts from 'typescript';
import { extract } from './check-examples.mjs';
import { nodeBinary } from './node-versions.mjs';

const root = resolve(import.meta.dirname, '..');
const apps = join(root, 'test', 'apps');
// nest12 needs Node 24.9+: its jest runs under --experimental-vm-modules, whose require(esm) is
// what loads NestJS 12 (ESM-only) into its CommonJS tests. nest12-esm (the default of `nest new`:
// ESM, vitest 4 on vite 8) runs from Node 20.19 on, as vite 8 requires.
const matrix = { nest11: [20, 22, 24], nest12: [24], 'nest12-esm': [20, 22, 24] };
// The README's app, once per template: the oldest Node each template runs on.
const readmeMatrix = { nest11: [20], nest12: [24] };
// Where the README's app comes from: the README's Quick start, and every named example of
// docs/testing.md (which shows the Quick start's files again, so that its tests compile there: a file
// named in both must be the same in both).
const README_SOURCES = [
  { file: 'README.md', section: '## Quick start' },
  { file: 'docs/testing.md', section: null },
];
const STEP_TIMEOUT = 5 * 60_000;

const only = (process.env.APP_TEST_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const allPairs = [
  ...Object.entries(matrix).flatMap(([app, majors]) => majors.map((major) => ({ app, group: app, major, name: `${app}@${major}` }))),
  ...Object.entries(readmeMatrix).flatMap(([app, majors]) =>
    majors.map((major) => ({ app, group: `readme-${app}`, readme: true, major, name: `readme-${app}@${major}` })),
  ),
];
const pairs = allPairs.filter(
  (pair) => only.length === 0 || only.includes(pair.name) || only.includes(pair.group) || (pair.readme && only.includes('readme')),
);
if (pairs.length === 0) {
  console.error(`app test: APP_TEST_ONLY=${process.env.APP_TEST_ONLY} matches none of ${allPairs.map((pair) => pair.name).join(', ')}`);
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

// ---- the README's app ----------------------------------------------------------------------------
/** The files the README's Quick start and docs/testing.md name, path -> content, as they have them. */
function readmeFiles() {
  const files = new Map();
  const where = new Map();
  for (const source of README_SOURCES) {
    for (const block of extract(join(root, source.file))) {
      if (!block.name || block.fragment || (source.section !== null && block.section.text !== source.section)) continue;
      const text = block.lines.join('\n') + '\n';
      const here = `${source.file}:${block.line}`;
      if (files.has(block.name)) {
        if (files.get(block.name) !== text) throw new Error(`${here} names ${block.name} again, unlike ${where.get(block.name)}: the two must be the same`);
        continue;
      }
      files.set(block.name, text);
      where.set(block.name, here);
    }
  }
  const described = README_SOURCES.map((source) => `${source.file}${source.section ? ` (${source.section})` : ''}`).join(' and ');
  if (!files.has('src/app.module.ts')) throw new Error(`${described} name no src/app.module.ts`);
  if (![...files.keys()].some((name) => /[.-]spec\.ts$/.test(name))) {
    throw new Error(`${described} name no test file (*.spec.ts, *.e2e-spec.ts)`);
  }
  return files;
}

const tsFiles = (dir, under = '') =>
  existsSync(join(dir, under))
    ? readdirSync(join(dir, under), { withFileTypes: true }).flatMap((entry) => {
        const path = posix.join(under, entry.name);
        if (entry.isDirectory()) return ['node_modules', 'dist', 'coverage'].includes(entry.name) ? [] : tsFiles(dir, path);
        return /\.[mc]?ts$/.test(entry.name) ? [path] : [];
      })
    : [];
const importsOf = (dir, path) => ts.preProcessFile(readFileSync(join(dir, path), 'utf8'), true, true).importedFiles.map((file) => file.fileName);
/** The app's file a relative import names (`./auth.controller`, `../src/app.module.js`), or null. */
function resolveImport(dir, from, specifier) {
  const base = posix.join(posix.dirname(from), specifier).replace(/\.[mc]?js$/, '');
  return [`${base}.ts`, `${base}.mts`, `${base}.cts`, `${base}/index.ts`].find((path) => existsSync(join(dir, path))) ?? null;
}
const packageOf = (specifier) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');

/**
 * Makes the copy of a template the README's app: writes the README's files; removes the app's
 * sources that nothing of the README's reaches any more (and the specs of those), and the app's own
 * tests of its routes (those that import from src/; a test of the package alone stays). Returns what
 * it did, and the packages the README's files import that the app lacks (@nestjs/* at its major).
 */
function makeReadmeApp(dir, files) {
  const own = new Set(tsFiles(dir));
  for (const [name, text] of files) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  // What the app's entry point and the README's files reach, through relative imports.
  const reached = new Set();
  const visit = (path) => {
    if (reached.has(path)) return;
    reached.add(path);
    for (const specifier of importsOf(dir, path)) {
      const target = specifier.startsWith('.') ? resolveImport(dir, path, specifier) : null;
      if (target) visit(target);
    }
  };
  for (const path of [...files.keys(), 'src/main.ts']) if (existsSync(join(dir, path))) visit(path);
  const removed = [];
  const isSpec = (path) => /[.-]spec\.[mc]?ts$/.test(path);
  const augments = (path) => /^\s*declare\s+(module\s+['"]|global\b)/m.test(readFileSync(join(dir, path), 'utf8'));
  for (const path of [...own].filter((p) => !files.has(p)).sort()) {
    const relative = importsOf(dir, path).filter((specifier) => specifier.startsWith('.'));
    const stale = isSpec(path)
      ? // a spec of the app's sources stays while what it tests does; an e2e test of the app's routes goes
        relative.some((specifier) => {
          const target = resolveImport(dir, path, specifier);
          return !target || !reached.has(target) || (path.startsWith('test/') && target.startsWith('src/'));
        })
      : path.startsWith('src/') && !reached.has(path) && !augments(path);
    if (stale) {
      rmSync(join(dir, path));
      removed.push(path);
    }
  }
  // What the README's files import that the app does not depend on.
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.devDependencies }));
  const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
  const nestMajor = lock.packages?.['node_modules/@nestjs/core']?.version?.split('.')[0];
  const missing = new Set();
  for (const name of files.keys()) {
    for (const specifier of importsOf(dir, name)) {
      if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
      const pkg = packageOf(specifier);
      if (pkg !== 'nest-sessions' && !declared.has(pkg)) missing.add(pkg);
    }
  }
  const install = [...missing].sort().map((pkg) => (pkg.startsWith('@nestjs/') && nestMajor ? `${pkg}@${nestMajor}` : pkg));
  return { wrote: [...files.keys()], removed, install };
}

async function runPair(pair, tarball, bin, work, readme) {
  const started = Date.now();
  const dir = join(work, pair.name.replace('@', '-node'));
  cpSync(join(apps, pair.app), dir, {
    recursive: true,
    filter: (src) => !['node_modules', 'dist', 'coverage'].includes(basename(src)) && !src.endsWith('.tsbuildinfo'),
  });
  const result = { ...pair, steps: [], failures: [] };
  let extra = [];
  if (pair.readme) {
    try {
      result.readme = makeReadmeApp(dir, readme);
      extra = result.readme.install;
    } catch (error) {
      result.failures.push({ step: 'readme', output: error.stack ?? String(error) });
      result.ms = Date.now() - started;
      return result;
    }
  }
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
    [['install nest-sessions', ...extra].join(' '), 'npm', ['install', ...npmFlags, tarball, ...extra]],
    ['build', 'npm', ['run', 'build']],
    ['typecheck', 'npx', ['--no-install', 'tsc', '--noEmit', '-p', 'tsconfig.json']],
    // The README's module has no AppController, so its app has no unit test left: `npm test` finds none.
    pair.readme ? ['test (--passWithNoTests)', 'npm', ['test', '--', '--passWithNoTests']] : ['test', 'npm', ['test']],
    ['test:e2e', 'npm', ['run', 'test:e2e']],
  ];
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
      const runner = ['jest', 'vitest'].find((name) => existsSync(join(dir, 'node_modules', name, 'package.json')));
      result.versions = `NestJS ${version('@nestjs/core')}, TypeScript ${version('typescript')}, ${runner} ${runner ? version(runner) : '?'}`;
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
  let readme;
  if (pairs.some((pair) => pair.readme)) {
    try {
      readme = readmeFiles();
    } catch (error) {
      console.log(`app test: the README's app cannot be made: ${error.message}`);
    }
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
        const result = pair.readme && !readme
          ? { ...pair, node: '?', steps: [], failures: [{ step: 'readme', output: 'no README files (above)' }], ms: 0 }
          : await runPair(pair, tarball, bins.get(pair.major), work, readme);
        results.push(result);
        const ok = result.failures.length === 0;
        console.log(`${ok ? 'PASS' : 'FAIL'} ${result.name} (Node ${result.node}; ${result.versions ?? '?'}) in ${seconds(result.ms)}: ${result.steps.join(', ')}`);
        if (result.readme) {
          const { wrote, removed } = result.readme;
          console.log(`  ${result.name}: README's ${wrote.join(', ')}; removed ${removed.join(', ') || 'nothing'}`);
        }
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
