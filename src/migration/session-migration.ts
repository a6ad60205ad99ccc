import { DEFAULT_SESSION } from '../session/session.constants.js';
import { SessionConfigError } from '../session/session.errors.js';
import type { SessionDefinition } from '../session/session-definition.js';
import { generateSessionId } from '../session/session-id.js';
import { SessionState } from '../session/session.js';
import { putData, type SessionRecord } from '../stores/session-store.interface.js';
import type { RequestSessions } from '../lifecycle/request-sessions.js';
import type { SessionEngine } from '../lifecycle/session-engine.js';
import { adopt } from '../lifecycle/session-reader.js';
import type { FoundRecord, FoundSession, SessionMigrationSource } from './session-migration.source.js';

/** The old library's app changed the session between our read and our claim this many times in a row: give up. */
const CLAIM_ATTEMPTS = 3;

/**
 * Moves sessions of the library an app comes from into the default session, once each: a request
 * that brings the old cookie and none of ours gets the old session's data under a new id, the old
 * record is swapped for a marker naming the new id, and the old cookie is cleared. The marker lives
 * as long as the old session had left (at most as long as the new one): following it only ever
 * leads to a live session of ours, so it grants an old cookie nothing it could not do before, and a
 * client that never received the response that moved its session keeps it.
 *
 * Concurrent first requests of one old session all read it; each writes a new session to our store,
 * then tries to swap the old record for its marker; the store lets one win. The others delete what
 * they wrote and adopt the winner's session, which is in our store before its marker is published.
 */
export class SessionMigration {
  constructor(
    private readonly engine: SessionEngine,
    readonly source: SessionMigrationSource,
    readonly definition: SessionDefinition,
  ) {}

  /** Checks `migrateFrom` against the sessions it will feed; throws `SessionConfigError` naming the option. */
  static check(source: unknown, definitions: ReadonlyMap<string, SessionDefinition>): asserts source is SessionMigrationSource {
    const s = source as Partial<SessionMigrationSource> | null;
    if (
      s === null ||
      typeof s !== 'object' ||
      typeof s.cookieName !== 'string' ||
      typeof s.clearCookie !== 'string' ||
      typeof s.verify !== 'function' ||
      typeof s.find !== 'function' ||
      typeof s.claim !== 'function'
    ) {
      throw new SessionConfigError("migrateFrom must be a session reader such as expressSessionReader({ secret, redis }) from 'nest-sessions/express-session'");
    }
    const def = definitions.get(DEFAULT_SESSION)!;
    if (def.clientSide) {
      throw new SessionConfigError('migrateFrom needs a server-side store for the default session (sessions move into it); CookieStore cannot take them');
    }
    for (const each of definitions.values()) {
      if (each.cookieName === s.cookieName) {
        throw new SessionConfigError(
          `migrateFrom reads the cookie '${s.cookieName}', which session '${each.name}' uses too; give that session another cookie.name`,
        );
      }
    }
  }

  /**
   * The session an old cookie leads to, moved into our store; a fresh session when the cookie is
   * not authentic or its session is unknown, expired or already moved and gone since.
   */
  async migrate(request: RequestSessions, cookieValue: string): Promise<SessionState> {
    const def = this.definition;
    // No cookie can reach the client any more (a socket's handshake, a streamed response).
    if (request.headSent()) return new SessionState(def, request);
    const oldId = this.source.verify(cookieValue);
    if (oldId === undefined) return new SessionState(def, request);
    let found: FoundRecord | undefined = await this.engine.call(def, 'read a session to migrate', () => this.source.find(oldId), this.source.description);
    for (let attempt = 0; found !== undefined; attempt++) {
      if ('migratedTo' in found) return this.follow(request, found.migratedTo);
      if (attempt === CLAIM_ATTEMPTS) {
        this.engine.logger.warn(`A session of ${this.source.description} changed under every attempt to migrate it; the request goes on without it`);
        break;
      }
      const now = Date.now();
      const record = this.recordOf(found, now);
      if (record === undefined) return new SessionState(def, request);
      // Data the session's schema refuses is not moved in (and stays where it is), as a stored session that does not match reads as none.
      if (def.schema !== undefined && (await def.schema.acceptStored(record.data)) === false) return new SessionState(def, request);
      const id = generateSessionId();
      // In our store before the marker names it, so a request that loses the claim finds it.
      await this.engine.call(def, 'save a session', (store) => store.set(id, record));
      let claimed: true | FoundRecord | undefined;
      try {
        const session = found;
        const markerLifetime = record.expiresAt - now;
        claimed = await this.engine.call(def, 'claim a session to migrate', () => this.source.claim(oldId, session, id, markerLifetime), this.source.description);
      } catch (error) {
        return this.afterFailedClaim(request, oldId, id, record, error);
      }
      if (claimed === true) return this.adopted(request, id, record);
      await this.discard(id);
      found = claimed;
    }
    return new SessionState(def, request);
  }

  /**
   * A claim whose answer did not arrive may still have landed (or land later): the session written
   * for it stays, as a marker may name it. If the old store now shows our marker, the move is done;
   * otherwise the request fails (503) and the next one with the old cookie finds the old session or
   * our marker. A session of ours no marker names holds no cookie of anyone's and expires.
   */
  private async afterFailedClaim(request: RequestSessions, oldId: string, id: string, record: SessionRecord, error: unknown): Promise<SessionState> {
    let now: FoundRecord | undefined;
    try {
      now = await this.engine.call(this.definition, 'read a session to migrate', () => this.source.find(oldId), this.source.description);
    } catch {
      throw error;
    }
    if (now !== undefined && 'migratedTo' in now && now.migratedTo === id) return this.adopted(request, id, record);
    throw error;
  }

  /** Another request migrated the session: its new one, if our store still holds it. */
  private async follow(request: RequestSessions, id: string): Promise<SessionState> {
    const def = this.definition;
    const record = await this.engine.call(def, 'read a session', (store) => store.get(id));
    const session = await adopt(def, request, id, false, '', record);
    // Whether or not it is still there, the old cookie has served its purpose.
    request.addCookie(this.source.cookieName, this.source.clearCookie);
    return session;
  }

  private async adopted(request: RequestSessions, id: string, record: SessionRecord): Promise<SessionState> {
    const session = await adopt(this.definition, request, id, false, '', record);
    // Its expiry is the old session's remaining lifetime: the request that moved it does not extend it.
    session.storedThisRequest = true;
    request.addCookie(this.source.cookieName, this.source.clearCookie);
    return session;
  }

  /** Removes a session this request wrote and that no marker names; one left behind only expires. */
  private async discard(id: string): Promise<void> {
    try {
      await this.engine.call(this.definition, 'destroy a session', (store) => store.destroy(id));
    } catch {
      // logged by the engine; the orphan holds no cookie of anyone's and expires
    }
  }

  /**
   * The old session as a record of ours: its data (as JSON text), a new creation time, and the old
   * remaining lifetime within our own limits (idle and absolute timeouts); undefined once expired.
   * A persistent old cookie stays persistent, with our idle timeout as its sliding lifetime.
   */
  private recordOf(found: FoundSession, now: number): SessionRecord | undefined {
    const def = this.definition;
    const maxAge = found.persistent && def.cookieMaxAge === undefined ? def.idleTimeout : undefined;
    let expiresAt = now + (maxAge ?? def.idleTimeout);
    if (def.absoluteTimeout !== undefined) expiresAt = Math.min(expiresAt, now + def.absoluteTimeout);
    if (found.expiresAt !== undefined) expiresAt = Math.min(expiresAt, found.expiresAt);
    if (!(expiresAt > now)) return undefined;
    const data: Record<string, string> = {};
    for (const key of Object.keys(found.data)) {
      const text = JSON.stringify(found.data[key]);
      if (text !== undefined) putData(data, key, text);
    }
    return { data, meta: maxAge === undefined ? { createdAt: now } : { createdAt: now, maxAge }, expiresAt };
  }
}
