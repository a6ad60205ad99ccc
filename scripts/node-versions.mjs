// Node.js binaries of other major lines, for scripts that run something on several Node versions.
// They come from the npm registry's `node-<platform>-<arch>` package (the official build, with
// bin/node), fetched with `npm pack` (so through npm's own cache) and unpacked once under
// node_modules/.cache/node-versions/<version>/: a clean clone fetches them again.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
export const cacheDir = join(root, 'node_modules', '.cache', 'node-versions');
const packageName = `node-${process.platform}-${process.arch}`;

const byNumber = (a, b) => {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
};
const releases = (versions, major) => versions.filter((v) => /^\d+\.\d+\.\d+$/.test(v) && v.split('.')[0] === String(major)).sort(byNumber);
const cached = () => (existsSync(cacheDir) ? readdirSync(cacheDir).filter((v) => existsSync(join(cacheDir, v, 'bin', 'node'))) : []);

/** The newest release of a major line the registry has (or, offline, the newest one cached here). */
export function newestVersion(major) {
  let versions;
  try {
    versions = JSON.parse(execFileSync('npm', ['view', packageName, 'versions', '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (error) {
    const local = releases(cached(), major).pop();
    if (local) return local;
    throw new Error(`cannot list ${packageName} versions from the registry, and no Node ${major} is cached in ${cacheDir}`, { cause: error });
  }
  const newest = releases(versions, major).pop();
  if (!newest) throw new Error(`the registry has no ${packageName} release of Node ${major}`);
  return newest;
}

/**
 * The `bin` directory of a Node.js of the given major line (put it first on PATH): this process's
 * own Node when it is of that line (unless `exact` asks for the newest release), otherwise the
 * newest release of the line, downloaded and cached on first use.
 */
export async function nodeBinary(major, { exact = false, log = () => {} } = {}) {
  if (!exact && process.versions.node.split('.')[0] === String(major)) return dirname(process.execPath);
  const version = newestVersion(major);
  const dir = join(cacheDir, version);
  const bin = join(dir, 'bin');
  if (existsSync(join(bin, 'node'))) return bin;
  log(`node-versions: fetching ${packageName}@${version}`);
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, `.${version}-`));
  try {
    const tarball = execFileSync('npm', ['pack', '--silent', '--pack-destination', work, `${packageName}@${version}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n').pop();
    execFileSync('tar', ['-xzf', join(work, tarball), '-C', work]);
    const found = execFileSync(join(work, 'package', 'bin', 'node'), ['--version'], { encoding: 'utf8' }).trim();
    if (found !== `v${version}`) throw new Error(`${packageName}@${version} holds Node ${found}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(work, 'package'), dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return bin;
}
