import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/compile-for-child.js';

// "No cost when absent": an app without `telemetry: true` never loads @opentelemetry/api, though it
// is installed. Checked in a child process serving a session over HTTP, from the library built as
// CommonJS (as the package ships it), by what its require cache holds.

const run = promisify(execFile);
const outDir = join(repoRoot, 'tmp', `telemetry-loading-${process.pid}`);

const APP = `require('reflect-metadata');
const common = require('@nestjs/common');
const core = require('@nestjs/core');
const { SessionModule, Session } = require('./index.js');

class CounterController {
  count(session) {
    const visits = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}
Session()(CounterController.prototype, 'count', 0);
common.Get('count')(CounterController.prototype, 'count', Object.getOwnPropertyDescriptor(CounterController.prototype, 'count'));
common.Controller()(CounterController);
class AppModule {}
const telemetry = process.argv[2] === 'on';
common.Module({ imports: [SessionModule.forRoot({ secret: 'x'.repeat(40), telemetry })], controllers: [CounterController] })(AppModule);

(async () => {
  const app = await core.NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  const url = await app.getUrl();
  const first = await fetch(url + '/count');
  const cookie = first.headers.get('set-cookie').split(';')[0];
  const second = await (await fetch(url + '/count', { headers: { cookie } })).json();
  await app.close();
  const loaded = Object.keys(require.cache).filter((file) => file.includes('@opentelemetry'));
  console.log(JSON.stringify({ visits: second.visits, loaded }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
`;

/** Every source file of src/, as CommonJS with decorator metadata (what Nest's injection reads). */
function buildLibrary(): void {
  const srcRoot = join(repoRoot, 'src');
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []));
  for (const file of walk(srcRoot)) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, experimentalDecorators: true, emitDecoratorMetadata: true, esModuleInterop: true },
    });
    const out = join(outDir, relative(srcRoot, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
  writeFileSync(join(outDir, 'package.json'), JSON.stringify({ type: 'commonjs' }));
  writeFileSync(join(outDir, 'app.cjs'), APP);
}

async function serve(telemetry: 'on' | 'off'): Promise<{ visits: number; loaded: string[] }> {
  const { stdout } = await run(process.execPath, [join(outDir, 'app.cjs'), telemetry], { cwd: outDir, timeout: 30_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as { visits: number; loaded: string[] };
}

describe('@opentelemetry/api is loaded only for telemetry: true', () => {
  beforeAll(buildLibrary, 60_000);
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));

  it('without telemetry, an app serving sessions never requires it', async () => {
    const { visits, loaded } = await serve('off');
    expect(visits).toBe(2);
    expect(loaded).toEqual([]);
  });

  it('with telemetry: true, it does (the check above sees it when it is there)', async () => {
    const { visits, loaded } = await serve('on');
    expect(visits).toBe(2);
    expect(loaded.some((file) => file.includes(join('@opentelemetry', 'api')))).toBe(true);
  });
});
