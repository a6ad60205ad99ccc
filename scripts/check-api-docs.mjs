#!/usr/bin/env node
// Checks the API reference: TypeDoc generates it from the JSDoc of every entry point into a
// throw-away folder (failing on any exported name, or member of one, without a doc comment: see
// typedoc.config.mjs), and the result must be what docs/api/ holds, so that the committed reference
// is never older than the code. On a difference: `npm run docs:api`, and commit docs/api/.
//
//   node scripts/check-api-docs.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const committed = join(root, 'docs', 'api');
const work = mkdtempSync(join(tmpdir(), 'nest-sessions-api-'));
const fresh = join(work, 'api');

/** Every file under `dir`, as paths relative to it with `/` separators. */
function filesOf(dir) {
  const found = [];
  const walk = (at) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.push(relative(dir, path).split(sep).join('/'));
    }
  };
  if (existsSync(dir)) walk(dir);
  return found.sort();
}

let code = 0;
try {
  const typedoc = join(root, 'node_modules', 'typedoc', 'bin', 'typedoc');
  const run = spawnSync(process.execPath, [typedoc, '--options', join(root, 'typedoc.config.mjs'), '--out', fresh, '--logLevel', 'Warn'], {
    cwd: root,
    encoding: 'utf8',
  });
  process.stdout.write(run.stdout);
  process.stderr.write(run.stderr);
  if (run.status !== 0) {
    console.log('api docs: TypeDoc failed (above): every exported name and each of its members needs a doc comment');
    code = 1;
  } else {
    const want = filesOf(fresh);
    const have = filesOf(committed);
    const missing = want.filter((file) => !have.includes(file));
    const stale = have.filter((file) => !want.includes(file));
    const changed = want.filter((file) => have.includes(file) && readFileSync(join(fresh, file), 'utf8') !== readFileSync(join(committed, file), 'utf8'));
    for (const file of missing) console.log(`docs/api/${file}: missing`);
    for (const file of stale) console.log(`docs/api/${file}: no longer generated`);
    for (const file of changed) console.log(`docs/api/${file}: out of date`);
    const wrong = missing.length + stale.length + changed.length;
    if (wrong > 0) {
      console.log(`api docs: docs/api/ differs from the code in ${wrong} files: run \`npm run docs:api\` and commit docs/api/`);
      code = 1;
    } else {
      console.log(`api docs: ${want.length} pages, every exported name documented, docs/api/ up to date`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(code);
