import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, mkdir, open, opendir, readFile, readdir, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionConfigError, SessionError, SessionStoreError } from '../session/session.errors.js';
import { encodeStoreKey, isUserTie, type SessionMeta, type SessionPatch, type SessionRecord, type SessionStore, type UserSessionEntry } from './session-store.interface.js';
import { applyPatch } from './record-patch.js';
import { KeyedQueue } from './keyed-queue.js';

/** The options of `new FileStore({ directory })`. */
export interface FileStoreOptions {
  /** The directory that holds one file per session; created (recursively) at first write. */
  directory: string;
  /** How often, in ms, expired session files are swept. Default 10 minutes; 0 disables the timer. */
  sweepInterval?: number;
  /** Flush each file to disk before it replaces the old one, so a power cut cannot leave an empty file. Default true. */
  fsync?: boolean;
  /** Permissions of session files (they hold secrets). Default 0o600; the directory gets 0o700 when created. */
  fileMode?: number;
}

const ID = /^[A-Za-z0-9_-]{1,128}$/;
const SESSION_FILE = /^([A-Za-z0-9_-]{1,128})\.json$/;
const TEMP_FILE = /^[A-Za-z0-9_-]{1,128}\.json\.[0-9a-f]{12}\.tmp$/;
/** A temp file older than this is left over from a crash (a write takes milliseconds). */
const STALE_TEMP_MS = 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Errors Windows gives while another handle has the file open: worth a short retry. */
const TRANSIENT = new Set(['EPERM', 'EACCES', 'EBUSY']);
/** Files the sweep checks at once: enough to keep it moving, few enough that the requests' own file work does not queue behind a crowd of the sweep's in libuv's thread pool. */
const SWEEP_CONCURRENCY = 8;
/** Directory entries read per call while sweeping: the directory is never listed in one go. */
const SWEEP_DIR_BUFFER = 128;
/** How many times a marker is tried while a sweep keeps removing its (empty) user directory. */
const MARK_ATTEMPTS = 5;
/** The directory (inside the session directory) of the user index: `users/<sha256 of the user id>/<session id>`, empty marker files. */
const USERS = 'users';
const USER_DIR = /^[0-9a-f]{64}$/;

/**
 * Sessions as files in a directory, one JSON file per session: durable across restarts, for one
 * machine. Writes are atomic (a temp file renamed over the old one) and serialised per id, ids are
 * validated before they reach a path, and expired files are swept on a timer that never keeps the
 * process alive.
 */
export class FileStore implements SessionStore {
  /** The absolute path of the session directory. */
  readonly directory: string;
  private readonly fsync: boolean;
  private readonly fileMode: number;
  private timer: NodeJS.Timeout | undefined;
  private ready: Promise<void> | undefined;
  private sweeping: Promise<void> | undefined;
  // One chain per id with work pending; the entry is deleted when its chain drains.
  private readonly queues = new KeyedQueue();

  constructor(options: FileStoreOptions) {
    const directory = (options as Partial<FileStoreOptions> | undefined)?.directory;
    if (typeof directory !== 'string' || directory.trim() === '') {
      throw new SessionConfigError('FileStore option "directory" must be a non-empty path, e.g. new FileStore({ directory: ".sessions" })');
    }
    const interval = options.sweepInterval ?? 10 * 60_000;
    if (typeof interval !== 'number' || !Number.isFinite(interval) || interval < 0 || interval > MAX_TIMER_MS) {
      throw new SessionConfigError(`FileStore option "sweepInterval" must be a number of ms from 0 (no timer) to ${MAX_TIMER_MS}; got ${String(interval)}`);
    }
    const mode = options.fileMode ?? 0o600;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw new SessionConfigError(`FileStore option "fileMode" must be a permission number such as 0o600; got ${String(mode)}`);
    }
    this.directory = resolve(directory);
    this.fsync = options.fsync ?? true;
    this.fileMode = mode;
    if (interval > 0) {
      this.timer = setInterval(() => void this.reclaim().catch(() => undefined), interval);
      this.timer.unref();
    }
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    return ID.test(id) ? this.read(id) : undefined;
  }

  async set(id: string, record: SessionRecord): Promise<void> {
    if (!ID.test(id)) {
      // The id itself stays out of the message: messages are logged, ids never are.
      throw new SessionError(`FileStore refuses a session id of ${id.length} characters: ids must be 1 to 128 characters of A-Z, a-z, 0-9, "_" or "-" (a custom id generator must produce such ids)`);
    }
    await this.queues.run(id, async () => {
      await this.write(id, record);
      // A set replacing a session tied to another user leaves a marker there: dropped when listed or swept.
      if (record.meta.user !== undefined && record.expiresAt > Date.now()) await this.mark(record.meta.user.id, id);
    });
  }

  async patch(id: string, patch: SessionPatch): Promise<void> {
    if (!ID.test(id)) return;
    await this.queues.run(id, async () => {
      const current = await this.read(id);
      if (current === undefined) return;
      await this.write(id, applyPatch(current, patch));
      const before = current.meta.user?.id;
      const after = patch.user === undefined ? before : patch.user?.id;
      if (before !== undefined && before !== after) await this.unmark(before, id);
      if (after !== undefined && patch.expiresAt > Date.now()) await (after === before ? this.keepMarked(after, id) : this.mark(after, id));
    });
  }

  async touch(id: string, expiresAt: number): Promise<void> {
    if (!ID.test(id)) return;
    await this.queues.run(id, async () => {
      const current = await this.read(id);
      if (current === undefined) return;
      await this.write(id, { ...current, expiresAt });
      if (current.meta.user !== undefined && expiresAt > Date.now()) await this.keepMarked(current.meta.user.id, id);
    });
  }

  async destroy(id: string): Promise<void> {
    if (!ID.test(id)) return;
    await this.queues.run(id, async () => {
      const user = (await this.read(id, true))?.meta.user?.id;
      await this.remove(this.path(id));
      if (user !== undefined) await this.unmark(user, id);
    });
  }

  /** The live sessions tied to `userId`, from the markers in its index directory; a marker whose session is gone, expired or re-tied is deleted. */
  async listByUser(userId: string): Promise<UserSessionEntry[]> {
    const dir = this.userDir(userId);
    let ids: string[];
    try {
      ids = (await readdir(dir)).filter((name) => ID.test(name));
    } catch (error) {
      if (isMissing(error)) return [];
      throw this.failure("list a user's sessions", "check the directory's permissions", error);
    }
    const found: UserSessionEntry[] = [];
    for (let i = 0; i < ids.length; i += SWEEP_CONCURRENCY) {
      await Promise.all(
        ids.slice(i, i + SWEEP_CONCURRENCY).map((id) =>
          // In the id's queue: a marker written by a set running now is never taken for a stale one.
          this.queues.run(id, async () => {
            const record = await this.read(id);
            if (record?.meta.user?.id === userId) found.push({ id, meta: record.meta, expiresAt: record.expiresAt });
            else await this.unmark(userId, id);
          }),
        ),
      );
    }
    return found;
  }

  /** Deletes expired session files and temp files left by a crash; stray files are left alone. */
  reclaim(): Promise<void> {
    this.sweeping ??= this.sweep().then(() => this.sweepUsers().catch(() => undefined)).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /**
   * Checks that the session directory is there (created as the first write would) and readable and
   * writable, for health checks. The error names no path.
   */
  async ping(): Promise<void> {
    const usable = async () => {
      await this.ensureDirectory();
      if (!(await stat(this.directory)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
      await access(this.directory, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
    };
    try {
      await usable().catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') throw error;
        // Removed since it was created: a write would create it again, and so does the check.
        this.ready = undefined;
        return usable();
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException | undefined)?.code ?? 'error';
      throw new SessionStoreError(`FileStore cannot use its directory (${code}): check that it exists and is readable and writable`);
    }
  }

  /** Stops the sweep timer and waits for pending writes and a running sweep. */
  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    while (this.queues.size > 0 || this.sweeping !== undefined) {
      await Promise.all([this.queues.settled(), this.sweeping?.catch(() => undefined)]);
    }
  }

  private path(id: string): string {
    return join(this.directory, `${id}.json`);
  }

  private userDir(userId: string): string {
    return join(this.directory, USERS, userHash(userId));
  }

  /** Adds the session to its user's index. */
  private async mark(userId: string, id: string): Promise<void> {
    const dir = this.userDir(userId);
    try {
      for (let attempt = 1; ; attempt++) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        try {
          await (await open(join(dir, id), 'w', this.fileMode)).close();
          return;
        } catch (error) {
          // A sweep (of this process or another) removed the user's directory, empty a moment ago,
          // between the two calls: made again, so the session is not left out of its user's list.
          if ((error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT' || attempt >= MARK_ATTEMPTS) throw error;
        }
      }
    } catch (error) {
      throw this.failure("index a user's session", 'check that the directory is writable and the disk not full', error);
    }
  }

  /**
   * At each later write of a tied session: one `stat`, and the marker written again only when it is
   * missing, so a marker lost (a crash between two writes) comes back without every write paying a
   * directory and a file creation.
   */
  private async keepMarked(userId: string, id: string): Promise<void> {
    try {
      await stat(join(this.userDir(userId), id));
    } catch {
      await this.mark(userId, id);
    }
  }

  private async unmark(userId: string, id: string): Promise<void> {
    await this.remove(join(this.userDir(userId), id));
  }

  /** The live session in `id`'s file; undefined when missing, expired (unless `expiredToo`) or not a session record. */
  private async read(id: string, expiredToo = false): Promise<SessionRecord | undefined> {
    let text: string;
    try {
      text = await retry(() => readFile(this.path(id), 'utf8'));
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.failure('read a session file', "check the directory's permissions", error);
    }
    const record = parseRecord(text);
    return record !== undefined && (expiredToo || record.expiresAt > Date.now()) ? record : undefined;
  }

  /** Replaces the file atomically: readers and a crash see the old version or the new one, never a mix. */
  private async write(id: string, record: SessionRecord): Promise<void> {
    const file = this.path(id);
    // A session written already expired is a session gone.
    if (record.expiresAt <= Date.now()) return this.remove(file);
    const text = JSON.stringify({ data: record.data, meta: record.meta, expiresAt: record.expiresAt });
    const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await this.ensureDirectory();
      await this.writeTemp(temp, text).catch(async (error: unknown) => {
        if (!isMissing(error)) throw error;
        // The directory was removed while running: create it again, once.
        this.ready = undefined;
        await this.ensureDirectory();
        await this.writeTemp(temp, text);
      });
      await retry(() => rename(temp, file));
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw this.failure('write a session file', 'check that the directory is writable and the disk not full', error);
    }
  }

  private async writeTemp(temp: string, text: string): Promise<void> {
    const handle = await open(temp, 'wx', this.fileMode);
    try {
      await handle.writeFile(text, 'utf8');
      if (this.fsync) await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  private async remove(file: string): Promise<void> {
    try {
      await retry(() => unlink(file));
    } catch (error) {
      if (isMissing(error)) return;
      throw this.failure('delete a session file', "check the directory's permissions", error);
    }
  }

  /**
   * An error that names the directory, never the file: a file's name holds a session id, and the
   * engine logs the message. The cause keeps the system error's code, without its path.
   */
  private failure(action: string, advice: string, error: unknown): SessionStoreError {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    const cause = new Error(`${code ?? 'error'}: ${(error as NodeJS.ErrnoException | undefined)?.syscall ?? action} failed`);
    Object.assign(cause, { code });
    return new SessionStoreError(`FileStore could not ${action} in ${this.directory}${code ? ` (${code})` : ''}: ${advice}`, { cause });
  }

  private ensureDirectory(): Promise<void> {
    this.ready ??= mkdir(this.directory, { recursive: true, mode: 0o700 }).then(
      () => undefined,
      (error: unknown) => {
        this.ready = undefined; // let a later write try again
        throw error;
      },
    );
    return this.ready;
  }

  /**
   * Walks the directory a few entries at a time (never the whole listing in memory, nor one long
   * turn of the event loop) and checks SWEEP_CONCURRENCY files at once.
   */
  private async sweep(): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    try {
      for await (const entry of await opendir(this.directory, { bufferSize: SWEEP_DIR_BUFFER })) {
        if (!entry.isFile()) continue;
        // One bad file must not stop the sweep: each entry fails on its own.
        const check: Promise<void> = this.sweepEntry(entry.name)
          .catch(() => undefined)
          .finally(() => inFlight.delete(check));
        inFlight.add(check);
        if (inFlight.size >= SWEEP_CONCURRENCY) await Promise.race(inFlight);
      }
    } catch (error) {
      if (isMissing(error)) return;
      throw new SessionStoreError(`FileStore could not list ${this.directory} to sweep expired sessions`, { cause: error });
    } finally {
      await Promise.all(inFlight);
    }
  }

  /** Deletes markers of the user index whose session is gone (a crash between two writes), and empty user directories. */
  private async sweepUsers(): Promise<void> {
    const root = join(this.directory, USERS);
    let users: string[];
    try {
      users = (await readdir(root)).filter((name) => USER_DIR.test(name));
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const user of users) {
      const dir = join(root, user);
      const ids = (await readdir(dir).catch(() => [] as string[])).filter((name) => ID.test(name));
      for (let i = 0; i < ids.length; i += SWEEP_CONCURRENCY) {
        await Promise.all(
          ids.slice(i, i + SWEEP_CONCURRENCY).map((id) =>
            this.queues.run(id, async () => {
              const tie = (await this.read(id))?.meta.user?.id;
              if (tie === undefined || userHash(tie) !== user) await this.remove(join(dir, id));
            }).catch(() => undefined),
          ),
        );
      }
      await rmdir(dir).catch(() => undefined); // only when empty
    }
  }

  private async sweepEntry(name: string): Promise<void> {
    if (TEMP_FILE.test(name)) {
      const file = join(this.directory, name);
      if (Date.now() - (await stat(file)).mtimeMs > STALE_TEMP_MS) await this.remove(file);
      return;
    }
    const id = SESSION_FILE.exec(name)?.[1];
    if (id === undefined) return;
    await this.queues.run(id, async () => {
      // Read inside the queue: a touch that just extended the session must win.
      let record: SessionRecord | undefined;
      try {
        record = parseRecord(await readFile(this.path(id), 'utf8'));
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      if (record !== undefined && record.expiresAt <= Date.now()) {
        await this.remove(this.path(id));
        if (record.meta.user !== undefined) await this.unmark(record.meta.user.id, id);
      }
    });
  }
}

/** The record in `text`, or undefined when it is not one this store wrote. */
function parseRecord(text: string): SessionRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value) || !isObject(value.data) || !isObject(value.meta) || !isNumber(value.expiresAt)) return undefined;
  if (!Object.values(value.data).every((v) => typeof v === 'string')) return undefined;
  const meta = value.meta;
  if (!isNumber(meta.createdAt) || (meta.maxAge !== undefined && !isNumber(meta.maxAge))) return undefined;
  if (meta.session !== undefined && typeof meta.session !== 'string') return undefined;
  if (meta.flash !== undefined && !(isObject(meta.flash) && Object.values(meta.flash).every(Array.isArray))) return undefined;
  if (meta.user !== undefined && !isUserTie(meta.user)) return undefined;
  return { data: value.data as Record<string, string>, meta: meta as unknown as SessionMeta, expiresAt: value.expiresAt };
}

/** The name of a user's index directory: any user id, even one UTF-8 cannot carry exactly, gets its own. */
function userHash(userId: string): string {
  return createHash('sha256').update(encodeStoreKey(userId), 'utf8').digest('hex');
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** Retries a file operation a few times on the errors Windows gives while another handle is open. */
async function retry<T>(work: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException | undefined)?.code;
      if (attempt >= 4 || code === undefined || !TRANSIENT.has(code) || process.platform !== 'win32') throw error;
      await sleep(10 * 2 ** attempt);
    }
  }
}
