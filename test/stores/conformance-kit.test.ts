import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ClientSessionStore, SessionPatch, SessionRecord, SessionStore, UserSessionEntry } from '../../src/stores/session-store.interface.js';
import { CookieStore } from '../../src/stores/cookie.store.js';
import { applyPatch } from '../../src/stores/record-patch.js';
import { checkClientSessionStore, checkSessionStore, clientSessionStoreCaseNames, sessionStoreCaseNames, type SessionStoreCaseResult } from '../../src/testing/index.js';

// The kit is only worth running if it rejects stores that break the promises it names: each store
// below breaks one promise on purpose, and the kit must fail exactly the cases that check it.

/** A correct, minimal store: the baseline each broken store changes in one place. */
class SoundStore implements SessionStore {
  protected readonly sessions = new Map<string, SessionRecord>();

  get(id: string): SessionRecord | undefined {
    const rec = this.sessions.get(id);
    if (rec === undefined || rec.expiresAt <= Date.now()) return undefined;
    return rec;
  }

  set(id: string, record: SessionRecord): void {
    this.sessions.set(id, { data: this.copyData(record.data), meta: { ...record.meta, flash: this.copyFlash(record.meta.flash) }, expiresAt: record.expiresAt });
  }

  patch(id: string, patch: SessionPatch): void {
    const current = this.get(id);
    if (current === undefined) return;
    const next = applyPatch(current, patch);
    this.sessions.set(id, { ...next, data: this.copyData(next.data), meta: { ...next.meta, flash: this.copyFlash(next.meta.flash) } });
  }

  touch(id: string, expiresAt: number): void {
    const current = this.get(id);
    if (current !== undefined) this.sessions.set(id, { ...current, expiresAt });
  }

  destroy(id: string): void {
    this.sessions.delete(id);
  }

  reclaim(): void {
    for (const [id, rec] of this.sessions) if (rec.expiresAt <= Date.now()) this.sessions.delete(id);
  }

  listByUser(userId: string): UserSessionEntry[] {
    const found: UserSessionEntry[] = [];
    for (const [id, rec] of this.sessions) if (rec.meta.user?.id === userId && rec.expiresAt > Date.now()) found.push({ id, meta: rec.meta, expiresAt: rec.expiresAt });
    return found;
  }

  protected copyData(data: Record<string, string>): Record<string, string> {
    return { ...data };
  }

  protected copyFlash(flash: Record<string, unknown[]> | undefined): Record<string, unknown[]> | undefined {
    return flash && { ...flash };
  }
}

/** Copies data by assignment: a key named __proto__ sets the copy's prototype (a string is dropped). */
class AssignsDataKeys extends SoundStore {
  protected override copyData(data: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of Object.keys(data)) out[key] = data[key];
    return out;
  }
}

/** Copies flash by assignment: the flash key __proto__ becomes the flash object's prototype. */
class AssignsFlashKeys extends SoundStore {
  protected override copyFlash(flash: Record<string, unknown[]> | undefined): Record<string, unknown[]> | undefined {
    if (flash === undefined) return undefined;
    const out: Record<string, unknown[]> = {};
    for (const key of Object.keys(flash)) out[key] = flash[key];
    return out;
  }
}

/** Deep-merges flash messages into fresh objects: `{"__proto__": {...}}` in a message merges into Object.prototype. */
class MergesFlashMessages extends SoundStore {
  protected override copyFlash(flash: Record<string, unknown[]> | undefined): Record<string, unknown[]> | undefined {
    if (flash === undefined) return undefined;
    const out: Record<string, unknown[]> = {};
    for (const key of Object.keys(flash)) Object.defineProperty(out, key, { value: flash[key].map((m) => merge({}, m)), enumerable: true, writable: true, configurable: true });
    return out;
  }
}

function merge(target: unknown, source: unknown): unknown {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return source;
  const into = target as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    const value = (source as Record<string, unknown>)[key];
    into[key] = typeof into[key] === 'object' && into[key] !== null ? merge(into[key], value) : merge({}, value);
  }
  return into;
}

/** Writes the patch's maxAge and flash as a whole new meta, as a store with the old whole-meta patch did. */
class ReplacesMeta extends SoundStore {
  override patch(id: string, patch: SessionPatch): void {
    const current = this.get(id);
    if (current === undefined) return;
    const next = applyPatch({ ...current, meta: { createdAt: current.meta.createdAt } }, patch);
    this.sessions.set(id, next);
  }
}

/** Lists a user's sessions without looking at their expiry. */
class ListsExpired extends SoundStore {
  override listByUser(userId: string): UserSessionEntry[] {
    return [...this.sessions].filter(([, rec]) => rec.meta.user?.id === userId).map(([id, rec]) => ({ id, meta: rec.meta, expiresAt: rec.expiresAt }));
  }
}

/** Indexes a session under the user it was first written for, and never moves it. */
class IndexesFirstTieOnly extends SoundStore {
  private readonly index = new Map<string, Set<string>>();
  override set(id: string, record: SessionRecord): void {
    super.set(id, record);
    const user = record.meta.user?.id;
    if (user !== undefined) this.index.set(user, (this.index.get(user) ?? new Set()).add(id));
  }
  override listByUser(userId: string): UserSessionEntry[] {
    return [...(this.index.get(userId) ?? [])].flatMap((id) => {
      const rec = this.get(id);
      return rec === undefined ? [] : [{ id, meta: rec.meta, expiresAt: rec.expiresAt }];
    });
  }
}

/**
 * A set of ids per user, added to at every write of a tied session and pruned only when listed: an
 * index that grows without bound while its user stays active and is never listed.
 */
class PrunesOnlyWhenListed extends SoundStore {
  readonly index = new Map<string, Set<string>>();
  override set(id: string, record: SessionRecord): void {
    super.set(id, record);
    this.add(record.meta.user?.id, id);
  }
  override patch(id: string, patch: SessionPatch): void {
    super.patch(id, patch);
    this.add(this.get(id)?.meta.user?.id, id);
  }
  override destroy(id: string): void {
    const user = this.get(id)?.meta.user?.id;
    super.destroy(id);
    if (user !== undefined) this.index.get(user)?.delete(id);
  }
  override listByUser(userId: string): UserSessionEntry[] {
    const ids = this.index.get(userId) ?? new Set<string>();
    const found: UserSessionEntry[] = [];
    for (const id of ids) {
      const rec = this.get(id);
      if (rec?.meta.user?.id === userId) found.push({ id, meta: rec.meta, expiresAt: rec.expiresAt });
      else ids.delete(id);
    }
    return found;
  }
  get indexed(): number {
    let count = 0;
    for (const ids of this.index.values()) count += ids.size;
    return count;
  }
  private add(user: string | undefined, id: string): void {
    if (user !== undefined) this.index.set(user, (this.index.get(user) ?? new Set()).add(id));
  }
}

/** A store without the user index (an optional capability). */
class NoUserIndex extends SoundStore {
  declare listByUser: never;
  constructor() {
    super();
    Object.defineProperty(this, 'listByUser', { value: undefined });
  }
}

/** Touch changes the expiry it reports but the session still dies at the old one. */
class TouchDoesNothing extends SoundStore {
  override touch(): void {}
}

/** A sound store on a slow machine: every call takes longer than the ttl the suite is given. */
function slow<S extends SessionStore>(store: S, ms: number): SessionStore {
  const later = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));
  return {
    get: async (id) => later(store.get(id)).then((rec) => rec),
    set: async (id, rec) => later(store.set(id, rec)).then(() => undefined),
    patch: async (id, patch) => later(undefined).then(() => store.patch(id, patch)),
    touch: async (id, expiresAt) => later(undefined).then(() => store.touch(id, expiresAt)),
    destroy: async (id) => later(store.destroy(id)).then(() => undefined),
    reclaim: async () => later(store.reclaim?.()).then(() => undefined),
    listByUser: async (userId) => later(undefined).then(() => store.listByUser!(userId)),
  };
}

/** A FileStore-like store that turns ids into paths without checking them (and runs one call at a time). */
class PathFromIdStore implements SessionStore {
  private queue: Promise<unknown> = Promise.resolve();
  constructor(readonly directory: string) {}

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    try {
      const rec = JSON.parse(await readFile(this.file(id), 'utf8')) as SessionRecord;
      return rec.expiresAt > Date.now() ? rec : undefined;
    } catch {
      return undefined;
    }
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    const file = this.file(id);
    mkdirSync(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(record));
  }

  patch(id: string, patch: SessionPatch): Promise<void> {
    return this.serial(async () => {
      const current = await this.get(id);
      if (current !== undefined) await this.set(id, applyPatch(current, patch));
    });
  }

  touch(id: string, expiresAt: number): Promise<void> {
    return this.serial(async () => {
      const current = await this.get(id);
      if (current !== undefined) await this.set(id, { ...current, expiresAt });
    });
  }

  async destroy(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
  }

  private file(id: string): string {
    return join(this.directory, `${id}.json`);
  }
}

const failed = (results: SessionStoreCaseResult[]) => results.filter((r) => !r.ok).map((r) => r.name);
const hostileId = (label: string) => `hostile id ${label} round-trips or is refused, and no other session is touched`;

const base = mkdtempSync(join(tmpdir(), 'conformance-kit-'));
let sandboxes = 0;
afterAll(() => rmSync(base, { recursive: true, force: true }));
afterEach(() => {
  delete (Object.prototype as Record<string, unknown>).polluted; // what MergesFlashMessages did, undone
});

const tree = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tree(join(dir, e.name)) : [join(dir, e.name)]));

describe('the SessionStore conformance kit', () => {
  it('passes a sound store', async () => {
    expect(failed(await checkSessionStore(() => new SoundStore()))).toEqual([]);
  });

  it.each([
    ['assigns data keys', () => new AssignsDataKeys(), ['data keys named __proto__, constructor or prototype stay own plain data and pollute nothing']],
    ['assigns flash keys', () => new AssignsFlashKeys(), ['flash keys named __proto__ or constructor stay own plain data and pollute nothing']],
    ['deep-merges flash messages', () => new MergesFlashMessages(), ['flash keys named __proto__ or constructor stay own plain data and pollute nothing']],
  ] as [string, () => SessionStore, string[]][])('rejects a store that %s, in the case about __proto__ keys', async (_what, factory, cases) => {
    expect(failed(await checkSessionStore(factory))).toEqual(cases);
  });

  it('catches Object.prototype polluted by a store, not only a replaced prototype', async () => {
    const results = await checkSessionStore(() => new MergesFlashMessages());
    const polluted = results.find((r) => !r.ok);
    expect(String((polluted?.error as Error | undefined)?.message)).toMatch(/polluted/);
  });

  it('rejects a store whose patch writes meta whole, undoing concurrent flash and maxAge changes', async () => {
    const cases = failed(await checkSessionStore(() => new ReplacesMeta()));
    expect(cases).toContain('patch replaces and removes flash keys one by one and leaves the other flash keys');
    expect(cases).toContain('patch never changes createdAt or the session name');
    expect(cases).toContain('concurrent patches of flash keys, data keys and maxAge all survive');
  });

  it('rejects a store whose touch does not extend the expiry', async () => {
    expect(failed(await checkSessionStore(() => new TouchDoesNothing()))).toEqual([
      'touch extends the expiry: the session lives past its old one',
      'patches and touches that leave the user out keep the tie and its details',
    ]);
  });

  it('rejects a store whose listByUser returns expired sessions', async () => {
    expect(failed(await checkSessionStore(() => new ListsExpired()))).toEqual(["an expired session leaves its user's list, and the index lets go of it"]);
  });

  it('rejects a store whose user index does not follow a session re-tied by a patch or a set', async () => {
    expect(failed(await checkSessionStore(() => new IndexesFirstTieOnly()))).toEqual([
      'a patch ties, re-ties and unties a session, keeping its data',
      'set over a session tied to another user moves it, and set without a user unties it',
    ]);
  });

  it("rejects a user index that keeps an active user's expired sessions until they are listed", async () => {
    expect(failed(await checkSessionStore(() => new PrunesOnlyWhenListed(), { countIndexed: (store) => store.indexed }))).toEqual([
      "an active user's expired sessions leave the index without any listing (by the user's next writes, or reclaim)",
    ]);
  });

  it('skips the user-index cases on a store without listByUser, and passes it', async () => {
    const results = await checkSessionStore(() => new NoUserIndex());
    expect(results.filter((r) => !r.ok)).toEqual([]);
    const skipped = results.filter((r) => r.skipped === true).map((r) => r.name);
    expect(skipped).toContain('listByUser lists the live sessions tied to a user, with their meta, and no others');
    expect(skipped).toHaveLength(11);
  });

  const expiryCases = sessionStoreCaseNames.filter((name) => /expir/.test(name));

  it('checks expiry on a machine too slow for the ttl: no case skipped or failed, each one retried with a longer life', async () => {
    const results = await checkSessionStore(() => slow(new SoundStore(), 80), { skip: sessionStoreCaseNames.filter((name) => !expiryCases.includes(name)), ttl: 60, timeout: 30_000 });
    expect(results.filter((r) => expiryCases.includes(r.name))).toEqual(expiryCases.map((name) => ({ name, ok: true })));
  });

  it('still catches a touch that does nothing on such a slow machine', async () => {
    const results = await checkSessionStore(() => slow(new TouchDoesNothing(), 80), { skip: sessionStoreCaseNames.filter((name) => !expiryCases.includes(name)), ttl: 60, timeout: 30_000 });
    expect(failed(results)).toEqual(['touch extends the expiry: the session lives past its old one']);
  });

  it('rejects a store that writes files outside its directory for ids such as "../x"', async () => {
    const stores = new WeakMap<PathFromIdStore, string>();
    const results = await checkSessionStore(
      () => {
        const sandbox = join(base, `sandbox-${++sandboxes}`);
        const store = new PathFromIdStore(join(sandbox, 'a', 'b', 'sessions'));
        stores.set(store, sandbox);
        return store;
      },
      { writtenOutside: (store) => tree(stores.get(store)!).filter((file) => !file.startsWith(store.directory + sep)) },
    );
    const cases = failed(results);
    for (const label of ['"../x"', '"../../x"', '"x/../<another id>"', '"x/./../<another id>"']) expect(cases).toContain(hostileId(label));
    expect(cases).toContain('ids that a path or an encoding would merge stay different sessions');
    expect(cases.every((name) => name.startsWith('hostile id') || name.startsWith('ids that'))).toBe(true);
  });

  it('rejects such a store even without writtenOutside: ids that resolve to one file are merged', async () => {
    const cases = failed(await checkSessionStore(() => new PathFromIdStore(join(base, `sandbox-${++sandboxes}`, 'a', 'b', 'sessions'))));
    expect(cases).toContain('ids that a path or an encoding would merge stay different sessions');
    expect(cases).not.toContain(hostileId('"../x"')); // only writtenOutside can see a file written next to the directory
  });

  it('refuses a skip list naming no case', async () => {
    await expect(checkSessionStore(() => new SoundStore(), { skip: ['no such case'] })).rejects.toThrow(/options.skip names no case.*sessionStoreCaseNames/);
    expect(sessionStoreCaseNames.length).toBeGreaterThan(30);
  });
});

/** Seals nothing: the session is plain base64url JSON. */
class UnsealedStore implements ClientSessionStore {
  readonly clientSide = true as const;
  seal(id: string, record: SessionRecord): string {
    return Buffer.from(JSON.stringify([id, record])).toString('base64url');
  }
  sealedLength(id: string, record: SessionRecord): number {
    return this.seal(id, record).length;
  }
  open(value: string): { id: string; record: SessionRecord } | undefined {
    try {
      const [id, record] = JSON.parse(Buffer.from(value, 'base64url').toString()) as [string, SessionRecord];
      return typeof id === 'string' && record.expiresAt > Date.now() ? { id, record } : undefined;
    } catch {
      return undefined;
    }
  }
}

/** A real cookie store behind a cache that never looks at the expiry again. */
class ForgetsExpiry implements ClientSessionStore {
  readonly clientSide = true as const;
  private readonly inner: CookieStore;
  private readonly opened = new Map<string, { id: string; record: SessionRecord }>();
  constructor(secrets: readonly string[]) {
    this.inner = new CookieStore({ secret: [...secrets] });
  }
  seal(id: string, record: SessionRecord): string {
    return this.inner.seal(id, record);
  }
  sealedLength(id: string, record: SessionRecord): number {
    return this.inner.sealedLength(id, record);
  }
  open(value: string): { id: string; record: SessionRecord } | undefined {
    const known = this.opened.get(value) ?? this.inner.open(value);
    if (known) this.opened.set(value, known);
    return known;
  }
}

describe('the ClientSessionStore conformance kit', () => {
  it('passes the CookieStore', async () => {
    expect(failed(await checkClientSessionStore((secrets) => new CookieStore({ secret: [...secrets] })))).toEqual([]);
  });

  it('rejects a store that does not seal', async () => {
    const cases = failed(await checkClientSessionStore(() => new UnsealedStore()));
    expect(cases).toEqual([
      'a changed, truncated or extended value opens to nothing, and open never throws',
      'a value sealed by a store with another secret opens to undefined',
      'key rotation: a value sealed with an old secret opens while that secret is listed, and the first secret seals',
      'two seals of one session give different values (a fresh nonce each time)',
    ]);
  });

  it('rejects a store that opens a value it saw while live after its expiry', async () => {
    expect(failed(await checkClientSessionStore((secrets) => new ForgetsExpiry(secrets)))).toEqual(['an expired value opens to undefined, also one opened while it was live']);
  });

  it('names its cases', () => {
    expect(clientSessionStoreCaseNames).toContain('a value sealed by a store with another secret opens to undefined');
  });
});
