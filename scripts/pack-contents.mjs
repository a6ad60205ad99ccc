#!/usr/bin/env node
// Checks what `npm publish` would ship, from `npm pack --dry-run --json` over the built package:
// - in: LICENSE, README.md, CHANGELOG.md, package.json; every file an entry point of package.json
//   (`main`, `types`, `exports`, `typesVersions`) names; a declaration map beside every declaration
//   file, and the sources (src/) every map points to, so "go to definition" lands in TypeScript;
// - out: nothing from test/, bench/, sample/, docs/ or scripts/, and no build info;
// - the tarball stays under MAX_PACKED_BYTES, so that nothing large slips in unseen.
//
//   npm run build && node scripts/pack-contents.mjs
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';

// Measured at 406,839 bytes packed (1,756,209 unpacked, 454 files) when this check was written; the
// limit leaves about 15% for growth. Raise it on purpose, with the reason, never to make the check pass.
const MAX_PACKED_BYTES = 470_000;

const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.log('pack contents: dist/ is missing: run `npm run build` first');
  process.exit(1);
}

const [report] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }));
const packed = new Set(report.files.map((file) => file.path));
const problems = [];

/** `./dist/x.js` → `dist/x.js`. */
const normal = (path) => posix.normalize(path).replace(/^\.\//, '');

// In: the package's own files, and every file an entry point names.
const required = new Set(['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts']);
for (const field of ['main', 'types']) if (pkg[field]) required.add(normal(pkg[field]));
const targetsOf = (value) => (typeof value === 'string' ? [value] : Object.values(value).flatMap(targetsOf));
for (const target of targetsOf(pkg.exports)) required.add(normal(target));
for (const paths of Object.values(pkg.typesVersions?.['*'] ?? {})) for (const path of paths) required.add(normal(path));
for (const file of required) if (!packed.has(file)) problems.push(`${file} is not in the package`);

// In: a declaration map beside every declaration, and every source a map points to.
let maps = 0;
for (const file of packed) {
  if (!/\.d\.ts$/.test(file) || !file.startsWith('dist/')) continue;
  const map = `${file}.map`;
  if (!packed.has(map)) {
    problems.push(`${map} is not in the package (declaration maps: "declarationMap" in tsconfig.build.json)`);
    continue;
  }
  maps += 1;
  const { sources = [] } = JSON.parse(readFileSync(join(root, map), 'utf8'));
  for (const source of sources) {
    const path = posix.join(posix.dirname(map), source);
    if (!packed.has(path)) problems.push(`${path} (the source of ${map}) is not in the package`);
  }
}
if (maps === 0) problems.push('no declaration map (dist/**/*.d.ts.map) is in the package');
if (![...packed].some((file) => file.startsWith('src/') && file.endsWith('.ts'))) problems.push('no source (src/**/*.ts) is in the package');

// Out: the repository's own tooling, tests and documentation (README.md and CHANGELOG.md aside).
const FORBIDDEN = /^(test|bench|sample|docs|scripts)\//;
for (const file of packed) {
  if (FORBIDDEN.test(file)) problems.push(`${file} is in the package: only dist/, src/ and the package's own files belong there`);
  if (file.endsWith('.tsbuildinfo')) problems.push(`${file} is in the package: build info is not for users`);
}

// Small: under the stated limit.
const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
if (report.size > MAX_PACKED_BYTES) {
  problems.push(`the tarball is ${report.size} bytes, over the limit of ${MAX_PACKED_BYTES} (scripts/pack-contents.mjs): see what grew with \`npm pack --dry-run\``);
}

for (const problem of problems) console.log(`pack contents: ${problem}`);
console.log(
  `pack contents: ${report.entryCount} files, ${report.size} bytes packed (${kib(report.size)}, limit ${kib(MAX_PACKED_BYTES)}), ` +
    `${report.unpackedSize} bytes unpacked (${kib(report.unpackedSize)}); ${maps} declaration maps: ` +
    `${problems.length === 0 ? 'ok' : `${problems.length} problems`}`,
);
process.exit(problems.length === 0 ? 0 : 1);
