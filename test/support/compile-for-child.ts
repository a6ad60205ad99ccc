import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Transpiles source files of src/ to plain ESM under `outDir`, keeping their relative layout, so a
 * child `node` process (which cannot run TypeScript on Node 20) can import them. `outDir` must sit
 * inside the repository so that bare imports such as @nestjs/common resolve from node_modules.
 */
export function compileForChild(sources: string[], outDir: string): void {
  const srcRoot = join(repoRoot, 'src');
  for (const source of sources) {
    const file = join(srcRoot, source);
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, experimentalDecorators: true },
    });
    const out = join(outDir, relative(srcRoot, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
}
