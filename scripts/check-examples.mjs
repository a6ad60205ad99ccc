#!/usr/bin/env node
// Compiles every TypeScript example of the documentation against the BUILT package, as a user's app
// imports it: README.md, docs/**/*.md (not docs/api/, generated from the JSDoc) and sample/README.md.
//
//   node scripts/check-examples.mjs [--config=nodenext|node10] [files.md...]
//
// - A fenced block whose info string starts with `ts` or `typescript` is an example.
// - A block whose first line is a comment naming a file (`// app.module.ts`, `// types.ts: ...`) is
//   that file; consecutive named blocks under one heading form one small project, so that
//   `app.module.ts` can import './auth.controller'. A named block may also import a named block
//   defined earlier in the same document ('./signed-in.guard'). An unnamed block is a module of its own.
// - A block marked in its info string (```ts fragment) is deliberately partial: it is skipped, and
//   listed as such. Every other block must compile.
// - Each example (a block, or a project) is written to `.examples/<example>/` and compiled apart from
//   the others: those whose files are plain modules share one program (for speed), and any example
//   that could reach another's types (a script's globals, a `declare module` augmentation, `declare
//   global`, an import of an earlier block) gets a program of its own. `.examples/` is a CommonJS
//   app (package.json without "type") whose node_modules/nest-sessions is a symlink to this
//   repository, so `nest-sessions` and its subpaths resolve through the package's own `exports`
//   (or, for node10, its `main`, `types` and `typesVersions`) to dist/; every other package
//   resolves from the repository's node_modules.
// - Note: with `module: nodenext`, TypeScript 5.9 treats every .ts file as a module, so there a
//   `declare module 'nest-sessions'` in a types.ts without import or export augments; in a .d.ts,
//   or in any file with `module: commonjs`, it replaces the package's typings instead. Hence two
//   configurations.
// - Two configurations, both as `nest new` writes them but `strict`: `nodenext` (today's template)
//   and `node10` (`module: commonjs`, the resolution of older apps, which ignores `exports`).
//
// Each example's tsconfig is left in `.examples/<example>/` to reproduce an error with
// `npx tsc -p .examples/<example>/tsconfig.nodenext.json`.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const work = join(root, '.examples');

const nestTemplate = {
  // What `nest new` writes (NestJS 11), with `strict` on and nothing emitted.
  declaration: false,
  removeComments: true,
  emitDecoratorMetadata: true,
  experimentalDecorators: true,
  allowSyntheticDefaultImports: true,
  esModuleInterop: true,
  isolatedModules: true,
  target: 'ES2023',
  skipLibCheck: true,
  strict: true,
  forceConsistentCasingInFileNames: true,
  noEmit: true,
  // Only what the examples import, and Node's globals: not every @types package of this repository.
  types: ['node'],
};
const configs = {
  nodenext: { ...nestTemplate, module: 'nodenext', moduleResolution: 'nodenext', resolvePackageJsonExports: true },
  node10: { ...nestTemplate, module: 'commonjs', moduleResolution: 'node10' },
};

// ---- extraction ---------------------------------------------------------------------------------
export const NAMED = /^\s*\/\/\s*([\w.@-]+(?:\/[\w.@-]+)*\.(?:d\.)?[mc]?tsx?)(?=$|[\s:,(])/;

/**
 * The TypeScript blocks of one markdown file, with the heading each is under (`heading`) and the
 * `#` or `##` heading of its section (`section`). A block's `name` is the file its first line names.
 */
export function extract(mdPath) {
  const lines = readFileSync(mdPath, 'utf8').split(/\r?\n/);
  const blocks = [];
  let heading = { text: '(top)', line: 0 };
  let section = heading;
  let fence = null;
  lines.forEach((text, index) => {
    const line = index + 1;
    if (fence) {
      const close = /^(\s*)(`{3,}|~{3,})\s*$/.exec(text);
      if (close && close[2][0] === fence.char && close[2].length >= fence.length) {
        if (fence.block) blocks.push(fence.block);
        fence = null;
      } else if (fence.block) {
        fence.block.lines.push(text.startsWith(' '.repeat(fence.indent)) ? text.slice(fence.indent) : text.trimStart());
      }
      return;
    }
    const open = /^(\s*)(`{3,}|~{3,})\s*([^`]*)$/.exec(text);
    if (open) {
      const words = open[3].trim().split(/[\s,{}]+/).filter(Boolean);
      const lang = (words[0] ?? '').toLowerCase();
      const isTs = lang === 'ts' || lang === 'typescript';
      fence = {
        char: open[2][0],
        length: open[2].length,
        indent: open[1].length,
        block: isTs
          ? { md: mdPath, line, firstLine: line + 1, indent: open[1].length, heading, section, fragment: words.slice(1).includes('fragment'), lines: [] }
          : null,
      };
      return;
    }
    const h = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(text);
    if (h) {
      heading = { text: `${h[1]} ${h[2]}`, line };
      if (h[1].length <= 2) section = heading;
    }
  });
  if (fence?.block) blocks.push(fence.block); // an unclosed fence runs to the end, as in CommonMark
  for (const block of blocks) block.name = NAMED.exec(block.lines[0] ?? '')?.[1] ?? null;
  return blocks;
}

// ---- the check, when this file is run (app-test.mjs imports extract() from it) ---------------
// (Both paths real: a symlinked checkout must not skip the check silently.)
const real = (path) => (existsSync(path) ? realpathSync(path) : path);
if (process.argv[1] && real(resolve(process.argv[1])) === real(fileURLToPath(import.meta.url))) main();

function main() {
  // ---- arguments ----------------------------------------------------------------------------------
  let chosen = Object.keys(configs);
  const files = [];
  for (const arg of process.argv.slice(2)) {
    if (arg.startsWith('--config=')) {
      chosen = arg.slice('--config='.length).split(',');
      for (const name of chosen) if (!configs[name]) fail(`unknown config ${name}: ${Object.keys(configs).join(', ')}`);
    } else if (arg === '-h' || arg === '--help') {
      console.log('usage: node scripts/check-examples.mjs [--config=nodenext,node10] [file.md...]');
      process.exit(0);
    } else files.push(resolve(arg));
  }
  if (files.length === 0) files.push(...defaultFiles());

  function fail(message) {
    console.error(message);
    process.exit(2);
  }

  function defaultFiles() {
    const found = [join(root, 'README.md')];
    const walk = (dir) => {
      if (!existsSync(dir)) return;
      for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const path = join(dir, entry.name);
        // docs/api/ is generated from the JSDoc (npm run docs:api): its snippets are fragments of doc comments.
        if (entry.isDirectory()) {
          if (path !== join(root, 'docs', 'api')) walk(path);
        } else if (entry.name.endsWith('.md')) found.push(path);
      }
    };
    walk(join(root, 'docs'));
    found.push(join(root, 'sample', 'README.md'));
    return found.filter((path) => existsSync(path));
  }

  // ---- the built package --------------------------------------------------------------------------
  if (!existsSync(join(root, 'dist', 'index.d.ts'))) {
    console.log('dist/ is missing: npm run build');
    const built = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
    if (built.status !== 0) fail('npm run build failed');
  }

  /** Groups blocks into examples: consecutive named blocks under one heading are one project. */
  function examplesOf(blocks) {
    const examples = [];
    const fragments = [];
    let project = null;
    for (const block of blocks) {
      if (block.fragment) {
        fragments.push(block);
        continue;
      }
      if (block.name) {
        const joins =
          project && project.heading === block.heading && !project.blocks.some((b) => b.name === block.name);
        if (!joins) {
          project = { md: block.md, heading: block.heading, line: block.line, blocks: [] };
          examples.push(project);
        }
        project.blocks.push(block);
      } else {
        project = null;
        examples.push({ md: block.md, heading: block.heading, line: block.line, blocks: [{ ...block, name: 'example.ts', unnamed: true }] });
      }
    }
    return { examples, fragments };
  }

  // ---- the projects on disk -----------------------------------------------------------------------
  // The symlink goes first, so that nothing could ever delete through it.
  rmSync(join(work, 'node_modules', 'nest-sessions'), { force: true });
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'node_modules'), { recursive: true });
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'examples', private: true }, null, 2) + '\n');
  symlinkSync(relative(join(work, 'node_modules'), root) || '.', join(work, 'node_modules', 'nest-sessions'), 'dir');
  writeFileSync(join(work, '.gitignore'), '*\n');

  const rel = (path) => relative(root, path).split(sep).join('/');
  const all = [];
  const fragments = [];
  for (const md of files) {
    const found = examplesOf(extract(md));
    all.push(...found.examples);
    fragments.push(...found.fragments);
  }
  for (const example of all) {
    example.dir = join(work, `${rel(example.md).replace(/[^\w]+/g, '-').replace(/^-+/, '')}-${example.line}`);
    mkdirSync(example.dir, { recursive: true });
    example.files = new Map();
    // Named blocks defined earlier in the same document are there too, for a relative import to find
    // (`import { SignedInGuard } from './signed-in.guard'`); only the example's own are compiled.
    for (const earlier of all) {
      if (earlier === example) break;
      if (earlier.md !== example.md) continue;
      for (const block of earlier.blocks) {
        if (block.unnamed || example.blocks.some((b) => b.name === block.name)) continue;
        const path = join(example.dir, block.name);
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, block.lines.join('\n') + '\n');
      }
    }
    for (const block of example.blocks) {
      const path = join(example.dir, block.name);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, block.lines.join('\n') + '\n');
      example.files.set(path, block);
    }
    for (const name of chosen) {
      const tsconfig = { compilerOptions: usesJest(example) ? withJest(configs[name]) : configs[name], files: [...example.files.keys()].map((p) => relative(example.dir, p)) };
      writeFileSync(join(example.dir, `tsconfig.${name}.json`), JSON.stringify(tsconfig, null, 2) + '\n');
    }
  }

  // ---- compiling ----------------------------------------------------------------------------------
  /** One compiler host per configuration, sharing parsed files outside `.examples/` between examples. */
  function hostFor(options) {
    const host = ts.createCompilerHost(options);
    const cache = new Map();
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, languageVersionOrOptions, onError, shouldCreate) => {
      if (fileName.startsWith(work + sep)) return getSourceFile(fileName, languageVersionOrOptions, onError, shouldCreate);
      const version = typeof languageVersionOrOptions === 'object' ? languageVersionOrOptions : { languageVersion: languageVersionOrOptions };
      const key = `${fileName}\0${version.languageVersion}\0${version.impliedNodeFormat}`;
      let file = cache.get(key);
      if (!file) {
        file = getSourceFile(fileName, languageVersionOrOptions, onError, shouldCreate);
        if (file) cache.set(key, file);
      }
      return file;
    };
    // Resolutions are cached too: every example resolves the same packages the same way.
    const canonical = (f) => (host.useCaseSensitiveFileNames() ? f : f.toLowerCase());
    const modules = ts.createModuleResolutionCache(work, canonical, options);
    host.resolveModuleNameLiterals = (literals, containingFile, redirected, opts, containingSource) =>
      literals.map((literal) =>
        ts.resolveModuleName(literal.text, containingFile, opts, host, modules, redirected, ts.getModeForUsageLocation(containingSource, literal, opts)),
      );
    host.getModuleResolutionCache = () => modules;
    const typeRefs = ts.createTypeReferenceDirectiveResolutionCache(work, canonical, options, modules.getPackageJsonInfoCache());
    host.resolveTypeReferenceDirectiveReferences = (references, containingFile, redirected, opts, containingSource) =>
      references.map((reference) => {
        const name = typeof reference === 'string' ? reference : reference.fileName.toLowerCase();
        const mode = typeof reference === 'string' ? undefined : ts.getModeForFileReference(reference, containingSource?.impliedNodeFormat);
        return ts.resolveTypeReferenceDirective(name, containingFile, opts, host, redirected, typeRefs, mode);
      });
    return host;
  }

  function locate(example, diagnostic) {
    const file = diagnostic.file;
    const block = file && example.files.get(resolve(file.fileName));
    if (!file || diagnostic.start === undefined) return `${rel(example.md)}:${example.line}:1`;
    const { line, character } = file.getLineAndCharacterOfPosition(diagnostic.start);
    if (!block) return `${rel(file.fileName)}:${line + 1}:${character + 1}`;
    return `${rel(example.md)}:${block.firstLine + line}:${block.indent + character + 1}`;
  }

  /** A jest test (`*.spec.ts`, `*-spec.ts`, `*.test.ts` that imports nothing from vitest) sees jest's globals. */
  function usesJest(example) {
    return example.blocks.some((block) => /(?:[.-]spec|\.test)\.[mc]?ts$/.test(block.name) && !block.lines.some((line) => line.includes("from 'vitest'")));
  }
  function withJest(options) {
    return { ...options, types: [...(options.types ?? []), 'jest'] };
  }

  /**
   * Whether an example can share one program with the others: its files are modules (a script's
   * declarations are global) that neither augment a module nor declare globals (`declare module`,
   * `declare global`), reference no types (`/// <reference>`) and import no earlier block's file.
   * The others are compiled each on its own, so that nothing one example declares reaches another.
   */
  function shareable(example) {
    if (usesJest(example)) return false;
    const own = new Set(example.blocks.map((b) => b.name.replace(/\.(d\.)?[mc]?tsx?$/, '')));
    return example.blocks.every((block) => {
      const text = block.lines.join('\n');
      const source = ts.createSourceFile(block.name, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
      if (!ts.isExternalModule(source) || source.referencedFiles.length || source.typeReferenceDirectives.length) return false;
      if (source.statements.some((statement) => ts.isModuleDeclaration(statement))) return false;
      return ts
        .preProcessFile(text)
        .importedFiles.every(({ fileName }) => !fileName.startsWith('.') || own.has(fileName.replace(/^\.\//, '').replace(/\.[mc]?js$/, '')));
    });
  }

  const started = Date.now();
  const failed = new Map(); // example -> configs it failed under
  const errorLines = [];
  const shared = all.filter(shareable);
  const batches = [shared, ...all.filter((example) => !shared.includes(example)).map((example) => [example])].filter((b) => b.length);
  for (const name of chosen) {
    const parsed = ts.convertCompilerOptionsFromJson(configs[name], work);
    if (parsed.errors.length) fail(ts.formatDiagnostics(parsed.errors, ts.createCompilerHost({})));
    const options = parsed.options;
    const host = hostFor(options);
    for (const batch of batches) {
      const program = ts.createProgram({ rootNames: batch.flatMap((example) => [...example.files.keys()]), options: usesJest(batch[0]) ? withJest(options) : options, host });
      const general = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
      for (const example of batch) {
        const diagnostics = [...general];
        for (const path of example.files.keys()) {
          const source = program.getSourceFile(path);
          diagnostics.push(...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source));
        }
        const errors = diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
        if (errors.length === 0) continue;
        if (!failed.has(example)) failed.set(example, []);
        failed.get(example).push(name);
        for (const diagnostic of errors) {
          const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n    ');
          const block = diagnostic.file && example.files.get(resolve(diagnostic.file.fileName));
          const where = block && example.blocks.length > 1 ? ` › ${block.name}` : '';
          errorLines.push(
            `${locate(example, diagnostic)} - error TS${diagnostic.code} [${name}] ${message}\n    (${example.heading.text}${where})`,
          );
        }
      }
    }
  }

  // ---- report -------------------------------------------------------------------------------------
  for (const line of errorLines) console.log(line);
  if (errorLines.length) console.log('');
  for (const block of fragments) {
    console.log(`fragment skipped: ${rel(block.md)}:${block.line} (${block.heading.text})`);
  }
  for (const name of chosen) {
    const bad = [...failed.values()].filter((names) => names.includes(name)).length;
    console.log(`${name}: ${all.length - bad} passed, ${bad} failed`);
  }
  console.log(`${fragments.length} fragments skipped`);
  console.log(
    `(${all.length} examples from ${files.map(rel).join(', ')}: ${shared.length} in one program, ${all.length - shared.length} on their own` +
      ` (${all.filter((e) => !shared.includes(e)).map((e) => e.line).join(', ') || 'none'}); ${((Date.now() - started) / 1000).toFixed(1)} s; projects in ${rel(work)}/)`,
  );
  console.log(`examples: ${all.length - failed.size} passed, ${failed.size} failed`);
  process.exit(failed.size ? 1 : 0);
}
