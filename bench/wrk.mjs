// The load: Debian's wrk, one thread, pinned to the load core; its summary parsed.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { track } from './servers.mjs';

/** Installs Debian's wrk when it is missing and this runs as root. */
export function ensureWrk() {
  if (spawnSync('wrk', ['-v']).error === undefined) return;
  if (process.getuid?.() !== 0) throw new Error("wrk is missing: install Debian's `wrk` (apt-get install -y wrk)");
  console.log('wrk is missing: apt-get install -y wrk');
  execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk'], { stdio: 'inherit' });
}

export function wrkVersion() {
  const out = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  return `${out.stdout ?? ''}${out.stderr ?? ''}`.split('\n')[0].split(' Copyright')[0].trim() || 'wrk';
}

function toMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

let scriptDir;
const scripts = new Map();

/** A wrk Lua script that sends `request` ({ method, body }) as JSON; one file per distinct request. */
function scriptFor(request) {
  const key = `${request.method} ${request.body}`;
  let file = scripts.get(key);
  if (file === undefined) {
    scriptDir ??= mkdtempSync(join(tmpdir(), 'nest-sessions-wrk-'));
    file = join(scriptDir, `request-${scripts.size}.lua`);
    // JSON string literals are valid Lua string literals for this ASCII text.
    writeFileSync(file, `wrk.method = ${JSON.stringify(request.method)}\nwrk.body = ${JSON.stringify(request.body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
    scripts.set(key, file);
  }
  return file;
}

/**
 * Loads http://127.0.0.1:<port>/<route> for `seconds` (whole seconds: wrk takes no fractions) with
 * `Cookie: <cookie>` on every request; with `request` ({ method, path, body }), sends that instead
 * (a JSON body: GraphQL). Resolves { rps, requests, non2xx, socketErrors, p50, p99 } (latencies in ms).
 */
export function wrk({ cpu, port, route, cookie, seconds, connections, request }) {
  const target = request === undefined ? [`http://127.0.0.1:${port}/${route}`] : ['-s', scriptFor(request), `http://127.0.0.1:${port}/${request.path}`];
  const args = ['-c', cpu, 'wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Cookie: ${cookie}`, ...target];
  return new Promise((resolve, reject) => {
    const child = track(spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`wrk exited with ${code}:\n${out}`));
      resolve({
        rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
        requests: Number(/(\d+) requests in/.exec(out)?.[1]),
        non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
        socketErrors: /Socket errors: (.*)/.exec(out)?.[1],
        p50: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
        p99: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
      });
    });
  });
}
