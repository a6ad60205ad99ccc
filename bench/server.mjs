// One contender's server, started by run.mjs on its own core: node bench/server.mjs <variant> [port]
// Prints "READY <port>" once listening on 127.0.0.1 (port 0 or none: a free one the system picks);
// exits on SIGTERM/SIGINT or when its parent goes away.
import { VARIANTS } from './apps.mjs';

const [name, portText] = process.argv.slice(2);
const variant = VARIANTS[name];
if (variant === undefined) {
  console.error(`unknown variant ${name}; known: ${Object.keys(VARIANTS).join(', ')}`);
  process.exit(2);
}

const { app, cleanup } = await variant.start();
await app.listen(Number(portText ?? 0), '127.0.0.1');
process.stdout.write(`READY ${app.getHttpServer().address().port}\n`);

let closing = false;
async function shutdown(code) {
  if (closing) return;
  closing = true;
  const force = setTimeout(() => process.exit(code), 5000);
  force.unref();
  try {
    await app.close();
    await cleanup();
  } finally {
    process.exit(code);
  }
}
process.on('SIGTERM', () => void shutdown(0));
process.on('SIGINT', () => void shutdown(0));
// The parent holds our stdin open: when it dies, stdin ends and we go too.
process.stdin.on('end', () => void shutdown(0));
process.stdin.resume();
