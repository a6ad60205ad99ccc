import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SessionPatch, SessionRecord } from '../../src/stores/session-store.interface.js';
import { SessionConfigError, SessionError, SessionStoreError } from '../../src/session/session.errors.js';
import { FileStore } from '../../src/stores/file.store.js';
import { defineSessionStoreTests } from '../../src/testing/index.js';
import { compileForChild, repoRoot } from '../support/compile-for-child.js';

const base = mkdtempSync(join(tmpdir(), 'file-store-test-'));
let dirs = 0;
const freshDir = () => join(base, `dir-${++dirs}`);
const stores: FileStore[] = [];
const track = (store: FileStore) => (stores.push(store), store);
const LATER = () => Date.now() + 60 * 60_000;
const record = (data: Record<string, unknown>, expiresAt = LATER()): SessionRecord => ({
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, JSON.stringify(v)])),
  meta: { createdAt: Date.now() },
  expiresAt,
});
const sessionFiles = async (dir: string) => (await readdir(dir).catch(() => [])).filter((name) => name.endsWith('.json'));
const tree = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [`${e.name}/`, ...tree(join(dir, e.name)).map((p) => `${e.name}/${p}`)] : [e.name]));
/** Files under `sandbox` that are not inside `directory`. */
const filesOutside = (sandbox: string, directory: string): string[] =>
  existsSync(sandbox) ? tree(sandbox).filter((p) => !p.endsWith('/') && !join(sandbox, p).startsWith(directory + sep)) : [];
const patch = (set: Record<string, string>, expiresAt = LATER()): SessionPatch => ({ set, unset: [], flash: { set: {}, unset: [] }, expiresAt });
/** The marker files of the user index: `users/<hash>/<id>`. */
const markers = (dir: string): string[] => (existsSync(join(dir, 'users')) ? tree(join(dir, 'users')).filter((p) => !p.endsWith('/')) : []);

afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

// Each case's store sits three levels down a sandbox of its own: what it writes anywhere else in the
// sandbox (an id such as "../x" turned into a path) is written outside its directory.
const sandboxes = new WeakMap<FileStore, string>();
defineSessionStoreTests(
  { describe, it },
  () => {
    const sandbox = freshDir();
    const store = new FileStore({ directory: join(sandbox, 'a', 'b', 'sessions'), sweepInterval: 0 });
    sandboxes.set(store, sandbox);
    return store;
  },
  {
    title: 'FileStore conformance',
    countSessions: async (store) => (await sessionFiles(store.directory)).length,
    countIndexed: (store) => markers(store.directory).length,
    writtenOutside: (store) => filesOutside(sandboxes.get(store)!, store.directory),
  },
);

describe('FileStore', () => {
  it("keeps a user's index as marker files, survives a restart, and sweeps markers a crash left behind", async () => {
    const directory = freshDir();
    const store = track(new FileStore({ directory, sweepInterval: 0 }));
    const tied = (user: string, expiresAt = LATER()): SessionRecord => ({ ...record({ a: 1 }, expiresAt), meta: { createdAt: Date.now(), user: { id: user } } });
    await store.set('one', tied('ada'));
    await store.set('two', tied('ada'));
    expect(markers(directory)).toHaveLength(2);
    // Another process (a restart) reads the same index.
    const restarted = track(new FileStore({ directory, sweepInterval: 0 }));
    expect((await restarted.listByUser('ada')).map((e) => e.id).sort()).toEqual(['one', 'two']);
    // A crash between removing a session file and its marker leaves a marker: swept.
    rmSync(join(directory, 'two.json'));
    await restarted.reclaim();
    expect(markers(directory)).toHaveLength(1);
    await restarted.destroy('one');
    await restarted.reclaim();
    expect(markers(directory)).toEqual([]);
    expect(readdirSync(join(directory, 'users'))).toEqual([]); // the empty user directory went too
  });

  it('writes the marker once, not at every write of a tied session', async () => {
    const directory = freshDir();
    const store = track(new FileStore({ directory, sweepInterval: 0 }));
    await store.set('once', { ...record({ a: 1 }), meta: { createdAt: Date.now(), user: { id: 'ada' } } });
    const [marker] = markers(directory);
    const path = join(directory, 'users', marker);
    const past = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000); // whole seconds: exact on every file system
    utimesSync(path, past, past);
    await store.patch('once', { ...patch({ b: '2' }), user: { id: 'ada', lastSeenAt: Date.now() } });
    await store.patch('once', patch({ c: '3' }));
    await store.touch('once', LATER() + 1000);
    expect(statSync(path).mtimeMs).toBe(past.getTime()); // never opened for writing again
    expect((await store.listByUser('ada')).map((e) => e.id)).toEqual(['once']);
  });

  it('writes the marker again at a later write of a tied session when it is missing, so a marker lost between two writes comes back', async () => {
    const directory = freshDir();
    const store = track(new FileStore({ directory, sweepInterval: 0 }));
    const rec: SessionRecord = { ...record({ a: 1 }), meta: { createdAt: Date.now(), user: { id: 'ada' } } };
    await store.set('one', rec);
    const [marker] = markers(directory);
    const lose = () => rmSync(join(directory, 'users', marker));
    lose(); // the app died between the session's file and its marker
    await store.patch('one', { ...patch({ b: '2' }), user: { id: 'ada', lastSeenAt: Date.now() } });
    expect(markers(directory)).toEqual([marker]);
    lose();
    await store.patch('one', patch({ c: '3' }));
    expect(markers(directory)).toEqual([marker]);
    lose();
    await store.touch('one', LATER() + 1000);
    expect((await store.listByUser('ada')).map((e) => e.id)).toEqual(['one']);
  });

  it('refuses bad options with a SessionConfigError naming the option', () => {
    expect(() => new FileStore({ directory: '' })).toThrow(SessionConfigError);
    expect(() => new FileStore({ directory: '  ' })).toThrow(/"directory"/);
    expect(() => new FileStore({} as never)).toThrow(/"directory"/);
    expect(() => new FileStore({ directory: freshDir(), sweepInterval: -1 })).toThrow(/"sweepInterval"/);
    expect(() => new FileStore({ directory: freshDir(), sweepInterval: Number.NaN })).toThrow(SessionConfigError);
    expect(() => new FileStore({ directory: freshDir(), fileMode: 0o1000 })).toThrow(/"fileMode"/);
  });

  it('creates its directory, with missing parents, at the first write and not before', async () => {
    const dir = join(freshDir(), 'nested', 'sessions');
    const store = track(new FileStore({ directory: dir }));
    expect(await store.get('abc')).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
    await store.set('abc', record({ a: 1 }));
    expect(readdirSync(dir)).toEqual(['abc.json']);
    expect(JSON.parse(readFileSync(join(dir, 'abc.json'), 'utf8'))).toMatchObject({ data: { a: '1' } });
  });

  it('writes nothing outside its directory for path-traversal ids, and refuses them clearly', async () => {
    const root = freshDir();
    const dir = join(root, 'inner', 'sessions');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(root, 'inner', 'victim.json'), 'untouched');
    const store = track(new FileStore({ directory: dir }));
    const hostile = ['../victim', '../../x', '..\\victim', '/etc/passwd', `${root}/inner/victim`, 'a/b', 'a\u0000b', '', '.', '..', 'x'.repeat(129), 'sé'];
    for (const id of hostile) {
      await expect(store.set(id, record({ a: 1 })), JSON.stringify(id)).rejects.toThrow(SessionError);
      await expect(store.set(id, record({ a: 1 }))).rejects.toThrow(/ids must be 1 to 128 characters/);
      expect(await store.get(id)).toBeUndefined();
      await store.patch(id, patch({ a: '2' }));
      await store.touch(id, LATER());
      await store.destroy(id);
    }
    expect(tree(root)).toEqual(['inner/', 'inner/sessions/', 'inner/victim.json']);
    expect(readFileSync(join(root, 'inner', 'victim.json'), 'utf8')).toBe('untouched');
  });

  it('names its directory in errors, never the session file (whose name is the session id)', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const store = track(new FileStore({ directory: dir, sweepInterval: 0 }));
    const id = 'secret-session-id-0123456789';
    const message = async (call: Promise<unknown>) => {
      const error = await call.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SessionStoreError);
      const { message: text, cause } = error as Error;
      expect(text).toContain(dir);
      for (const leak of [id, `${id}.json`]) {
        expect(text).not.toContain(leak);
        expect(String((cause as Error | undefined)?.message)).not.toContain(leak);
      }
      return text;
    };
    symlinkSync(`${id}.json`, join(dir, `${id}.json`)); // a link to itself: reading it fails with ELOOP
    expect(await message(store.get(id))).toMatch(/could not read a session file in .* \(ELOOP\)/);
    rmSync(join(dir, `${id}.json`));
    mkdirSync(join(dir, `${id}.json`, 'in-the-way'), { recursive: true }); // a directory where the file goes: the rename fails
    expect(await message(store.set(id, record({ a: 1 })))).toMatch(/could not write a session file in .*: check that the directory is writable/);
    const refused = await store.set(`${id}/../x`, record({ a: 1 })).catch((e: unknown) => e as Error);
    expect(refused).toBeInstanceOf(SessionError);
    expect((refused as Error).message).not.toContain(id);
  });

  it('reads a file that holds no session of its own writing as no session, never throws', async () => {
    const dir = freshDir();
    mkdirSync(dir);
    const store = track(new FileStore({ directory: dir, sweepInterval: 0 }));
    const later = LATER();
    const good = { data: { a: '1' }, meta: { createdAt: 1 }, expiresAt: later };
    const garbage: [string, unknown][] = [
      ['not json', '{"data":'],
      ['a number', 42],
      ['data not an object', { ...good, data: [] }],
      ['a data value that is not text', { ...good, data: { a: 1 } }],
      ['no meta', { data: {}, expiresAt: later }],
      ['createdAt not a number', { ...good, meta: { createdAt: '1' } }],
      ['maxAge not a number', { ...good, meta: { createdAt: 1, maxAge: '1000' } }],
      ['flash not an object', { ...good, meta: { createdAt: 1, flash: ['x'] } }],
      ['a flash list that is no list', { ...good, meta: { createdAt: 1, flash: { info: 'x' } } }],
      ['a session name that is no string', { ...good, meta: { createdAt: 1, session: 7 } }],
      ['expiresAt not a number', { ...good, expiresAt: String(later) }],
    ];
    writeFileSync(join(dir, 'good.json'), JSON.stringify(good));
    expect(await store.get('good')).toEqual(good);
    for (const [what, content] of garbage) {
      writeFileSync(join(dir, 'bad.json'), typeof content === 'string' ? content : JSON.stringify(content));
      expect(await store.get('bad'), what).toBeUndefined();
      await store.patch('bad', patch({ b: '2' })); // a patch leaves garbage alone rather than failing
    }
  });

  it('replaces files atomically: concurrent readers always see a whole old or new session', async () => {
    const dir = freshDir();
    const store = track(new FileStore({ directory: dir, fsync: false }));
    const versions = [record({ v: 'a'.repeat(300_000) }), record({ v: 'b'.repeat(700_000), w: 2 })];
    await store.set('swap', versions[0]);
    let writing = true;
    const writes = (async () => {
      for (let i = 1; i <= 60; i++) await store.set('swap', versions[i % 2]);
      writing = false;
    })();
    while (writing) {
      const got = await store.get('swap');
      expect(got).toBeDefined();
      expect(versions.map((v) => v.data)).toContainEqual(got!.data);
    }
    await writes;
    expect(await readdir(dir)).toEqual(['swap.json']); // no temp file left behind
  });

  it('keeps all of 200 concurrent patches to one session in one process', async () => {
    const store = track(new FileStore({ directory: freshDir(), fsync: false }));
    const expiresAt = LATER();
    await store.set('busy', record({ start: true }, expiresAt));
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.patch('busy', patch({ [`k${i}`]: String(i) }, expiresAt))),
    );
    const got = await store.get('busy');
    expect(Object.keys(got!.data)).toHaveLength(201);
    for (let i = 0; i < 200; i++) expect(got!.data[`k${i}`]).toBe(String(i));
    // The per-id queue is dropped once drained, so ids never accumulate in memory.
    expect((store as unknown as { queues: Map<string, unknown> }).queues.size).toBe(0);
  });

  it('sweeps expired files on its timer, and reclaim() also clears crash leftovers but no stray file', async () => {
    const dir = freshDir();
    const swept = track(new FileStore({ directory: dir, sweepInterval: 50 }));
    await swept.set('short', record({ a: 1 }, Date.now() + 100));
    await swept.set('long', record({ b: 2 }));
    await expect.poll(() => sessionFiles(dir), { timeout: 3000, interval: 50 }).toEqual(['long.json']);
    await swept.close(); // from here on, only reclaim() may delete

    const manual = track(new FileStore({ directory: dir, sweepInterval: 0 }));
    await manual.set('gone', record({ a: 1 }, Date.now() + 50));
    const stray = ['notes.txt', 'not-a-session.json.bak', 'corrupt.json', 'alien.json', 'sub/'];
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    writeFileSync(join(dir, 'not-a-session.json.bak'), '{');
    writeFileSync(join(dir, 'corrupt.json'), '{"data": {"a": "1"'); // named like a session but not one this store wrote
    writeFileSync(join(dir, 'alien.json'), '[1, 2, 3]');
    mkdirSync(join(dir, 'sub'));
    const oldTemp = 'long.json.0123456789ab.tmp';
    const newTemp = 'long.json.ba9876543210.tmp';
    writeFileSync(join(dir, oldTemp), '{"torn');
    writeFileSync(join(dir, newTemp), '{"in progress');
    const twoMinutesAgo = (Date.now() - 120_000) / 1000;
    utimesSync(join(dir, oldTemp), twoMinutesAgo, twoMinutesAgo);
    await new Promise((r) => setTimeout(r, 100));
    expect(await manual.get('corrupt')).toBeUndefined();
    await manual.reclaim();
    expect(tree(dir).sort()).toEqual([...stray, 'long.json', newTemp].sort());
    expect((await manual.get('long'))?.data).toEqual({ b: '2' });
  });

  it('sweeps a large directory a few files at a time, and serves reads of live sessions meanwhile', async () => {
    const dir = freshDir();
    const store = track(new FileStore({ directory: dir, sweepInterval: 0 }));
    await store.set('live', record({ keep: true }));
    const expired = JSON.stringify({ data: {}, meta: { createdAt: 1 }, expiresAt: Date.now() - 1000 });
    for (let i = 0; i < 3000; i++) writeFileSync(join(dir, `gone-${i}.json`), expired);
    // Files being checked are the ids with work queued in the store.
    const queues = (store as unknown as { queues: Map<string, unknown> }).queues;
    let inFlight = 0;
    let turns = 0;
    let sweeping = true;
    const watch = () => {
      inFlight = Math.max(inFlight, queues.size);
      turns++;
      if (sweeping) setImmediate(watch);
    };
    setImmediate(watch);
    const sweep = store.reclaim();
    const read = await store.get('live');
    const leftWhenRead = (await sessionFiles(dir)).length;
    await sweep;
    sweeping = false;
    expect(read?.data).toEqual({ keep: 'true' });
    expect(leftWhenRead, 'the read was answered before the sweep ended').toBeGreaterThan(1000);
    expect(inFlight, 'files checked at once').toBeGreaterThan(0);
    expect(inFlight, 'files checked at once').toBeLessThanOrEqual(8);
    expect(turns, 'event-loop turns during the sweep').toBeGreaterThan(100);
    expect(await sessionFiles(dir)).toEqual(['live.json']);
  });

  it('close() waits for writes in flight', async () => {
    const dir = freshDir();
    const store = new FileStore({ directory: dir });
    const pending = [store.set('one', record({ a: 1 })), store.patch('one', patch({ b: '2' }))];
    await store.close();
    expect(JSON.parse(readFileSync(join(dir, 'one.json'), 'utf8')).data).toEqual({ a: '1', b: '2' });
    await Promise.all(pending);
  });

  describe('in a child process', () => {
    const outDir = join(repoRoot, 'tmp', `file-store-child-${process.pid}`);
    const moduleUrl = pathToFileURL(join(outDir, 'stores', 'file.store.js')).href;
    const script = join(repoRoot, 'test', 'support', 'file-store-child.mjs');
    beforeAll(() => compileForChild(['stores/file.store.ts', 'stores/keyed-queue.ts', 'stores/record-patch.ts', 'session/session.errors.ts', 'stores/session-store.interface.ts'], outDir));
    afterAll(() => rmSync(outDir, { recursive: true, force: true }));

    /** Starts a write storm on `dir` and kills it with SIGKILL at a random moment after its first round. */
    async function killMidStorm(dir: string): Promise<void> {
      const child = spawn(process.execPath, [script, moduleUrl, dir, 'storm'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<NodeJS.Signals | null>((done) => child.on('exit', (_code, signal) => done(signal)));
      await new Promise<void>((storming, failed) => {
        child.stdout.on('data', (chunk: Buffer) => {
          if (chunk.toString().includes('round 1')) storming();
        });
        void exited.then(() => failed(new Error(`the storm child exited early: ${stderr}`)));
      });
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 250)));
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
    }

    it('leaves only whole session files when killed with SIGKILL in the middle of a write storm', async () => {
      const dir = freshDir();
      const ids = Array.from({ length: 20 }, (_, i) => `storm-${i}`);
      // A kill lands between writes as often as inside one: several kills make a torn file likely if writes were not atomic.
      for (let kill = 1; kill <= 4; kill++) {
        await killMidStorm(dir);
        const sessions = readdirSync(dir).filter((name) => !name.endsWith('.tmp'));
        expect(sessions.sort()).toEqual(ids.map((id) => `${id}.json`).sort());
        for (const name of sessions) expect(() => JSON.parse(readFileSync(join(dir, name), 'utf8')), `${name} after kill ${kill}`).not.toThrow();
        const store = track(new FileStore({ directory: dir, sweepInterval: 0 }));
        for (const id of ids) expect(await store.get(id), `${id} after kill ${kill}`).toBeDefined();
      }
    });

    it('never keeps the process alive: a store left open lets node exit', async () => {
      const dir = freshDir();
      const child = spawn(process.execPath, [script, moduleUrl, dir, 'idle'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) => child.on('exit', (c, s) => done([c, s])));
      clearTimeout(timer);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(readdirSync(dir)).toEqual(['idle.json']);
    });
  });
});
