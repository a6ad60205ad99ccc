// Throw-away Redis, Redis Cluster and PostgreSQL servers for the store benches, started on ports the
// OS picks by the very helpers the tests use (test/support/*.ts, transpiled here to plain ESM, since
// Node 20 cannot run TypeScript), and stopped when the bench exits.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH_DIR, ROOT_DIR } from './lib.mjs';

const SUPPORT = ['server-process', 'redis-server', 'redis-cluster', 'postgres-server'];
let loaded;

/** The test helpers as ESM modules: { serverProcess, redisServer, redisCluster, postgresServer }. */
export async function testSupport() {
  if (loaded) return loaded;
  const ts = (await import('typescript')).default;
  const out = join(BENCH_DIR, '.support');
  mkdirSync(out, { recursive: true });
  for (const name of SUPPORT) {
    const file = join(ROOT_DIR, 'test', 'support', `${name}.ts`);
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(join(out, `${name}.js`), outputText);
  }
  const load = (name) => import(pathToFileURL(join(out, `${name}.js`)).href);
  loaded = {
    serverProcess: await load('server-process'),
    redisServer: await load('redis-server'),
    redisCluster: await load('redis-cluster'),
    postgresServer: await load('postgres-server'),
  };
  return loaded;
}

const stops = [];
let hooked = false;
function onExit(stop) {
  stops.push(stop);
  if (hooked) return;
  hooked = true;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      void stopServices().finally(() => process.exit(130));
    });
  }
}

/** Stops every server started here (also on Ctrl-C). */
export async function stopServices() {
  await Promise.allSettled(stops.splice(0).map((stop) => stop()));
}

/** A standalone redis-server on a free port, nothing persisted: { port, url }. */
export async function startRedis() {
  const { redisServer } = await testSupport();
  const server = await redisServer.startRedisServer();
  onExit(() => server.stop());
  return { port: server.port, url: `redis://127.0.0.1:${server.port}`, stop: () => server.stop() };
}

/** A throw-away PostgreSQL cluster on a free port (fsync off: thrown away after the run): { port, connectionString }. */
export async function startPostgres(settings = {}) {
  const { serverProcess, postgresServer } = await testSupport();
  const server = await serverProcess.onFreePort((port) =>
    postgresServer.startPostgresServer(port, { settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', ...settings } }),
  );
  onExit(() => server.dispose());
  return { port: server.port, connectionString: server.connectionString, stop: () => server.dispose() };
}
