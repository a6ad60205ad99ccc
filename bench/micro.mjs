// npm run bench:micro: the codecs on one pinned core (tinybench), nest-sessions' own beside the raw
// primitives and the peers' codecs, on a ~200-byte session; then the cookie cipher candidates
// (ciphers.mjs), interleaved over rounds.
// Environment: BENCH_MICRO_TIME (ms per task, default 1000), BENCH_MICRO_CPU (core, default 1),
// BENCH_MICRO_CIPHER_ROUNDS (3: rounds of the cipher candidates, each in a new random order).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

if (process.env.BENCH_MICRO_PINNED === undefined && spawnSync('taskset', ['-V']).error === undefined) {
  // Re-run this file pinned to one core, so the figures compare with the HTTP benchmark's server core.
  const cpu = process.env.BENCH_MICRO_CPU ?? '1';
  const child = spawnSync('taskset', ['-c', cpu, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_MICRO_PINNED: cpu },
  });
  process.exit(child.status ?? 1);
}

const { ensureBenchDeps, distHas, distUrl, env, fmt, machine, saveRaw, versions, writeSection, loadAverage } = await import('./lib.mjs');
ensureBenchDeps();

const { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomBytes, timingSafeEqual } = await import('node:crypto');
const { Bench } = await import('tinybench');
const { cipherCandidates, checkCiphers } = await import('./ciphers.mjs');
const { SessionIdSigner, generateSessionId } = await import(distUrl('session-id.js'));
const { default: sodium } = await import('sodium-native');
const { default: signature } = await import('cookie-signature');
const { Signer: FastifySigner } = await import('@fastify/cookie');
const { sealData, unsealData } = await import('iron-session');

const TIME = env('BENCH_MICRO_TIME', 1000);
const SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';

// A session as the stores hold it: each value is its JSON text. About 200 bytes as JSON, id and times included.
const data = {
  userId: '4211',
  name: '"Ada Lovelace"',
  roles: '["admin","editor"]',
  visits: '17',
  theme: '"dark"',
};
const record = { data, meta: { createdAt: Date.now() }, expiresAt: Date.now() + 24 * 3600 * 1000 };
const plainObject = { id: generateSessionId(), expiresAt: record.expiresAt, createdAt: record.meta.createdAt, data };
const sessionJson = JSON.stringify(plainObject);

// --- ids
const signer = new SessionIdSigner([SECRET]);
const hmacKey = createSecretKey(Buffer.from(SECRET, 'utf8'));
const id = generateSessionId();
const signedValue = signer.sign(id);
const rawSign = (value) => createHmac('sha256', hmacKey).update(value).digest('base64url');
const rawVerify = (value) => {
  const dot = value.lastIndexOf('.');
  const expected = Buffer.from(rawSign(value.slice(0, dot)), 'utf8');
  const given = Buffer.from(value.slice(dot + 1), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
};
// Cold verification: more distinct values than the signer's verified-value cache holds, so every
// call misses it and computes the HMAC.
const COLD_VALUES = Array.from({ length: 20_011 }, () => signer.sign(generateSessionId()));
const coldSigner = new SessionIdSigner([SECRET]);
let coldIndex = 0;

// --- AES-256-GCM, the plain way: JSON, a random IV, base64url.
const aesKey = createSecretKey(randomBytes(32));
function aesSeal(object) {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', aesKey, iv);
  const body = cipher.update(JSON.stringify(object), 'utf8');
  cipher.final();
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}
function aesOpen(text) {
  const raw = Buffer.from(text, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', aesKey, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  const plain = decipher.update(raw.subarray(12, raw.length - 16));
  decipher.final();
  return JSON.parse(plain.toString('utf8'));
}
const aesSealed = aesSeal(plainObject);

// --- libsodium secretbox, as @fastify/secure-session does it (cipher;nonce in base64).
const boxKey = Buffer.alloc(sodium.crypto_secretbox_KEYBYTES);
sodium.randombytes_buf(boxKey);
function boxSeal(object) {
  const nonce = Buffer.allocUnsafe(sodium.crypto_secretbox_NONCEBYTES);
  sodium.randombytes_buf(nonce);
  const message = Buffer.from(JSON.stringify(object));
  const cipher = Buffer.allocUnsafe(message.length + sodium.crypto_secretbox_MACBYTES);
  sodium.crypto_secretbox_easy(cipher, message, nonce, boxKey);
  return `${cipher.toString('base64')};${nonce.toString('base64')}`;
}
function boxOpen(text) {
  const [c, n] = text.split(';');
  const cipher = Buffer.from(c, 'base64');
  const nonce = Buffer.from(n, 'base64');
  const message = Buffer.allocUnsafe(cipher.length - sodium.crypto_secretbox_MACBYTES);
  if (!sodium.crypto_secretbox_open_easy(message, cipher, nonce, boxKey)) throw new Error('bad box');
  return JSON.parse(message.toString());
}
const boxSealed = boxSeal(plainObject);

// --- express-session's id signature, @fastify/cookie's Signer
const expressSigned = signature.sign(id, SECRET);
const fastifySigner = new FastifySigner(SECRET);
const fastifySigned = fastifySigner.sign(id);

// --- iron-session
const ironSealed = await sealData(plainObject, { password: SECRET });

// --- nest-sessions CookieStore
let cookieStore;
let cookieSealed;
if (distHas('stores/cookie.store.js')) {
  const { CookieStore } = await import(distUrl('stores/cookie.store.js'));
  cookieStore = new CookieStore({ secret: SECRET });
  cookieSealed = cookieStore.seal(id, record);
} else {
  console.log('note: dist/stores/cookie.store.js is absent: CookieStore seal/open skipped');
}

// Sanity: every codec round-trips before it is timed.
if (signer.unsign(signedValue)?.[0] !== id || !rawVerify(signedValue)) throw new Error('id signing broken');
if (aesOpen(aesSealed).id !== plainObject.id || boxOpen(boxSealed).id !== plainObject.id) throw new Error('cipher broken');
if (signature.unsign(expressSigned, SECRET) !== id || fastifySigner.unsign(fastifySigned).value !== id) throw new Error('peer signer broken');
if ((await unsealData(ironSealed, { password: SECRET })).id !== plainObject.id) throw new Error('iron broken');
if (cookieStore && cookieStore.open(cookieSealed)?.id !== id) throw new Error('CookieStore broken');

const bench = new Bench({ time: TIME, warmupTime: Math.min(200, TIME / 5) });
const tasks = [
  ['raw', 'randomBytes(32) → base64url (a new id)', () => randomBytes(32).toString('base64url')],
  ['ours', 'nest-sessions generateSessionId()', () => generateSessionId()],
  ['raw', 'HMAC-SHA256 sign (base64url)', () => rawSign(id)],
  ['raw', 'HMAC-SHA256 verify (timingSafeEqual)', () => rawVerify(signedValue)],
  ['ours', 'nest-sessions SessionIdSigner.sign', () => signer.sign(id)],
  ['ours', 'nest-sessions SessionIdSigner.unsign, cold (cache miss)', () => coldSigner.unsign(COLD_VALUES[coldIndex++ % COLD_VALUES.length])],
  ['ours', 'nest-sessions SessionIdSigner.unsign, value seen before', () => signer.unsign(signedValue)],
  ['peer', "express-session's cookie-signature sign", () => signature.sign(id, SECRET)],
  ['peer', "express-session's cookie-signature unsign", () => signature.unsign(expressSigned, SECRET)],
  ['peer', '@fastify/cookie Signer sign', () => fastifySigner.sign(id)],
  ['peer', '@fastify/cookie Signer unsign', () => fastifySigner.unsign(fastifySigned)],
  ['raw', 'AES-256-GCM encrypt (JSON, IV, base64url)', () => aesSeal(plainObject)],
  ['raw', 'AES-256-GCM decrypt (base64url, JSON.parse)', () => aesOpen(aesSealed)],
  ...(cookieStore
    ? [
        ['ours', 'nest-sessions CookieStore.seal', () => cookieStore.seal(id, record)],
        ['ours', 'nest-sessions CookieStore.open', () => cookieStore.open(cookieSealed)],
      ]
    : []),
  ['peer', 'libsodium secretbox encrypt (@fastify/secure-session way)', () => boxSeal(plainObject)],
  ['peer', 'libsodium secretbox decrypt', () => boxOpen(boxSealed)],
  ['peer', 'iron-session sealData', () => sealData(plainObject, { password: SECRET })],
  ['peer', 'iron-session unsealData', () => unsealData(ironSealed, { password: SECRET })],
  ['raw', 'JSON.stringify + JSON.parse of the session', () => JSON.parse(JSON.stringify(plainObject))],
];
for (const [, name, fn] of tasks) bench.add(name, fn);

console.log(`session JSON: ${Buffer.byteLength(sessionJson)} bytes; CookieStore value: ${cookieSealed?.length ?? '—'} characters; ${TIME} ms per task, pinned to core ${process.env.BENCH_MICRO_PINNED ?? '(not pinned)'}`);
await bench.run();

const mean = {};
for (const task of bench.tasks) {
  const r = task.result;
  mean[task.name] = r?.latency?.mean !== undefined ? r.latency.mean * 1000 : NaN; // ms → µs
}
const rows = tasks.map(([kind, name]) => `| ${name} | ${kind} | ${fmt.fixed(mean[name], 2)} |`);
const ratio = (ours, raw) => mean[ours] / mean[raw];
const comparisons = [
  ['new id', 'nest-sessions generateSessionId()', 'randomBytes(32) → base64url (a new id)', 1.2],
  ['sign an id', 'nest-sessions SessionIdSigner.sign', 'HMAC-SHA256 sign (base64url)', 1.2],
  ['verify an id, cold', 'nest-sessions SessionIdSigner.unsign, cold (cache miss)', 'HMAC-SHA256 verify (timingSafeEqual)', 1.2],
  ['verify an id seen before', 'nest-sessions SessionIdSigner.unsign, value seen before', 'HMAC-SHA256 verify (timingSafeEqual)', 1.2],
  ...(cookieStore
    ? [
        ['encrypt a session', 'nest-sessions CookieStore.seal', 'AES-256-GCM encrypt (JSON, IV, base64url)', 1.2],
        ['decrypt a session', 'nest-sessions CookieStore.open', 'AES-256-GCM decrypt (base64url, JSON.parse)', 1.2],
      ]
    : []),
];
const compareRows = comparisons.map(([what, ours, raw, target]) => {
  const r = ratio(ours, raw);
  return `| ${what} | ${fmt.fixed(mean[ours], 2)} | ${fmt.fixed(mean[raw], 2)} | ${fmt.fixed(r, 2)}x | ${r <= target ? '✅' : '❌'} ≤ ${target}x |`;
});

// --- The cookie cipher candidates: seal = JSON.stringify → encrypt → base64url, open = the reverse,
// every candidate on the same terms (ciphers.mjs). Several rounds, each in a new random order, each
// task timed for a slice of TIME: the median of the rounds' medians, so that a slow moment of the
// machine lands on no candidate in particular.
const CIPHER_ROUNDS = env('BENCH_MICRO_CIPHER_ROUNDS', 3);
const candidates = await cipherCandidates();
checkCiphers(candidates, Buffer.from(sessionJson));
const cipherTasks = candidates.flatMap((c) => {
  const sealed = c.seal(Buffer.from(sessionJson)).toString('base64url');
  c.cookieChars = sealed.length;
  return [
    [c, 'seal', () => c.seal(Buffer.from(JSON.stringify(plainObject))).toString('base64url')],
    [c, 'open', () => JSON.parse(c.open(Buffer.from(sealed, 'base64url')).toString('utf8'))],
  ];
});
const cipherSamples = new Map(); // `${id} ${op}` → per-round median µs
for (let round = 1; round <= CIPHER_ROUNDS; round++) {
  const order = [...cipherTasks];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const b = new Bench({ time: TIME / 2, warmupTime: Math.min(100, TIME / 10) });
  for (const [c, op, fn] of order) b.add(`${c.id} ${op}`, fn);
  await b.run();
  for (const task of b.tasks) {
    const list = cipherSamples.get(task.name) ?? [];
    list.push(task.result?.latency?.p50 * 1000);
    cipherSamples.set(task.name, list);
  }
  console.log(`cipher round ${round}/${CIPHER_ROUNDS} done`);
}
const mid = (list) => [...list].sort((a, b) => a - b)[list.length >> 1];
const cipherUs = Object.fromEntries([...cipherSamples].map(([k, v]) => [k, mid(v)]));
const cipherRows = candidates.map((c) => `| ${c.label} | ${c.source} | ${c.nonceBits} | ${c.budget} | ${fmt.fixed(cipherUs[`${c.id} seal`], 2)} | ${fmt.fixed(cipherUs[`${c.id} open`], 2)} | ${c.cookieChars} |`);

const markdown = [
  `## \`npm run bench:micro\` — ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC`,
  '',
  `- ${machine()}; Node ${process.version}; tinybench ${versions().tinybench}; one process pinned to core ${process.env.BENCH_MICRO_PINNED ?? '(not pinned)'}; ${TIME} ms per task; load average ${loadAverage()} at the end.`,
  `- Session: ${Buffer.byteLength(sessionJson)} bytes of JSON (${Object.keys(data).length} data keys, with the id and times); ids are 32 random bytes in base64url.`,
  '',
  '| operation | kind | mean µs |',
  '|---|---|---:|',
  ...rows,
  '',
  'nest-sessions against the raw primitive (target: within 1.2x):',
  '',
  '| what | ours µs | raw µs | ratio | target |',
  '|---|---:|---:|---:|---|',
  ...compareRows,
  '',
  `Cookie cipher candidates (\`bench/ciphers.mjs\`): seal = \`JSON.stringify\` → encrypt with a random nonce from a pooled CSPRNG buffer → base64url of nonce | ciphertext | tag; open = the reverse with \`JSON.parse\`; same session. Median µs per operation, median over ${CIPHER_ROUNDS} rounds in random order. Nonce budget: messages per key with random nonces before the chance of a repeat reaches 2^-32 (NIST SP 800-38D's bound for random IVs).`,
  '',
  '| candidate | from | nonce bits | nonce budget | seal µs | open µs | cookie chars |',
  '|---|---|---:|---|---:|---:|---:|',
  ...cipherRows,
].join('\n');
console.log(`\n${markdown}`);
saveRaw('micro', { mean, cipherSamples: Object.fromEntries(cipherSamples), date: new Date().toISOString(), versions: versions() });
writeSection('micro', markdown);
console.log('\nwritten to bench/RESULTS.md');
