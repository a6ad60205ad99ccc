// Builds the package: one CommonJS build in dist/ (what `require` and jest's loader get), and for
// each entry point a two-line ES module beside it that re-exports that build (what `import` gets).
// One build means one copy of the module's state (one SessionModule, one engine) whichever way an
// app, its tests or its dependencies reach the package.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const dist = join(root, 'dist');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
// The package is "type": "module"; the build inside dist/ is CommonJS.
writeFileSync(join(dist, 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);

// Every entry point named in package.json's exports gets its ES module and its types.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const [subpath, target] of Object.entries(pkg.exports)) {
  if (typeof target === 'string') continue; // ./package.json
  const esm = target.import.default;
  const cjs = target.require.default;
  const base = `./${cjs.split('/').pop()}`;
  if (dirname(esm) !== dirname(cjs)) throw new Error(`exports['${subpath}']: the ES module must sit beside the CommonJS one`);
  const file = join(root, esm);
  writeFileSync(file, `export * from '${base}';\n`);
  writeFileSync(file.replace(/\.mjs$/, '.d.mts'), `export * from '${base}';\n`);
  // node10 resolution (older apps) ignores `exports`: each subpath needs the same types in typesVersions.
  if (subpath !== '.') {
    const types = pkg.typesVersions?.['*']?.[subpath.slice(2)];
    if (types?.[0] !== target.require.types) {
      throw new Error(`typesVersions['*']['${subpath.slice(2)}'] must be ["${target.require.types}"], as exports['${subpath}'].require.types`);
    }
  }
}
