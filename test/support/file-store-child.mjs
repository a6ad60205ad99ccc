// Runs a compiled FileStore in a child process. argv: <module url> <directory> <storm | idle>
//   storm: writes big sessions without pause, printing "round N" after each round, until killed.
//   idle:  writes one session, never closes the store, and should exit on its own.
const [moduleUrl, directory, mode] = process.argv.slice(2);
const { FileStore } = await import(moduleUrl);

const LATER = Date.now() + 60 * 60_000;
const ids = Array.from({ length: 20 }, (_, i) => `storm-${i}`);
// Big values made once, so the child spends its time writing files rather than building strings.
const bigs = [1_000_000, 2_000_000, 3_000_000, 4_000_000].map((size, k) => JSON.stringify(`${k}:`.padEnd(size, 'x')));
const record = (value) => ({ data: { value }, meta: { createdAt: Date.now() }, expiresAt: LATER });

if (mode === 'idle') {
  const store = new FileStore({ directory, sweepInterval: 20 });
  await store.set('idle', record('"idle"'));
  process.stdout.write('written\n');
} else {
  const store = new FileStore({ directory, sweepInterval: 0 });
  for (const id of ids) await store.set(id, record('"first"'));
  process.stdout.write('ready\n');
  for (let round = 1; ; round++) {
    await Promise.all(
      ids.map((id, i) =>
        (round + i) % 2 === 0
          ? store.set(id, record(bigs[(round + i) % bigs.length]))
          : store.patch(id, { set: { value: bigs[(round + i + 1) % bigs.length], round: String(round) }, unset: [], flash: { set: {}, unset: [] }, expiresAt: LATER }),
      ),
    );
    process.stdout.write(`round ${round}\n`);
  }
}
