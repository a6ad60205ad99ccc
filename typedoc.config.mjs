// The API reference (`npm run docs:api`): Markdown pages in docs/api/, generated from the JSDoc of
// every entry point that package.json's `exports` names, so a new subpath is documented as it ships.
// Validation fails the run on any exported name (or member of one) without a doc comment.
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
/** `./dist/stores/redis.store.js` → `./src/stores/redis.store.ts`: the source of each entry point. */
const entryPoints = Object.values(pkg.exports)
  .filter((target) => typeof target !== 'string')
  .map((target) => target.require.default.replace(/^\.\/dist\//, './src/').replace(/\.js$/, '.ts'));

/** @type {Partial<import('typedoc').TypeDocOptions & import('typedoc-plugin-markdown').PluginOptions>} */
export default {
  entryPoints,
  tsconfig: './tsconfig.build.json',
  plugin: ['typedoc-plugin-markdown'],
  out: './docs/api',
  cleanOutputDir: true,
  name: 'nest-sessions API reference',
  readme: 'none',
  entryFileName: 'README.md',
  // Stable output: no source links (line numbers would change with every edit), no dates, no version.
  disableSources: true,
  hideGenerator: true,
  hidePageHeader: true,
  excludePrivate: true,
  excludeProtected: true,
  excludeInternal: true,
  excludeExternals: true,
  sort: ['kind', 'instance-first', 'alphabetical-ignoring-documents'],
  validation: { notExported: true, invalidLink: true, invalidPath: true, rewrittenLink: true, notDocumented: true, unusedMergeModuleWith: true },
  // Types the reference names without a page of their own: the Standard Schema interface (what zod,
  // valibot and arktype schemas implement; no app writes it), the Session and Flash shapes that the
  // exported `Session` and `Flash` extend, and the test runner's function type.
  intentionallyNotExported: [
    'src/schema/standard-schema.ts:StandardSchemaV1',
    'src/schema/standard-schema.ts:StandardSchemaV1.InferInput',
    'src/schema/standard-schema.ts:StandardSchemaV1.Issue',
    'src/session/session.interface.ts:Session',
    'src/session/session.interface.ts:Flash',
    'src/testing/case-runner.ts:TestFn',
  ],
  treatWarningsAsErrors: true,
  treatValidationWarningsAsErrors: true,
};
