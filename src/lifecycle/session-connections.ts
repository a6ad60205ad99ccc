import type { ServerResponse } from 'node:http';

/**
 * The long-lived connections (WebSocket gateways' sockets, GraphQL subscriptions) that hang on a
 * stored session, by session name and id, in this process. When the session ends here (`destroy()`,
 * `regenerate()`, or ending it by other means), they are told, so that a logout over HTTP closes the
 * sockets of that session on this instance. Nothing is kept once a connection removes itself.
 */
export type ConnectionEnd = (reason: 'ended') => void;

export class SessionConnections {
  private readonly byKey = new Map<string, Set<ConnectionEnd>>();

  /** Registers `end` for the session `name`/`id`; the returned function removes it (call it on close). */
  add(name: string, id: string, end: ConnectionEnd): () => void {
    const key = keyOf(name, id);
    let ends = this.byKey.get(key);
    if (ends === undefined) this.byKey.set(key, (ends = new Set()));
    ends.add(end);
    return () => {
      const current = this.byKey.get(key);
      if (current === undefined) return;
      current.delete(end);
      if (current.size === 0) this.byKey.delete(key);
    };
  }

  /** How many connections hang on the session `name`/`id` here. */
  count(name: string, id: string): number {
    return this.byKey.get(keyOf(name, id))?.size ?? 0;
  }

  /** How many connections hang on sessions here, in all. */
  get size(): number {
    let total = 0;
    for (const ends of this.byKey.values()) total += ends.size;
    return total;
  }

  /**
   * The session `name`/`id` ended: every connection registered on it is removed and its `end` called
   * (one that throws does not keep the others from hearing it).
   */
  end(name: string, id: string): void {
    const key = keyOf(name, id);
    const ends = this.byKey.get(key);
    if (ends === undefined) return;
    this.byKey.delete(key);
    for (const end of ends) {
      try {
        end('ended');
      } catch {
        // a connection that fails to close itself is its own business
      }
    }
  }

  /**
   * The session `name`/`id` was replaced (`regenerate()`): its connections end once `res`, which
   * carries the new id's cookie, has been sent (or has failed), so that a client reconnecting at
   * once has that cookie.
   */
  endOnceSent(res: ServerResponse, name: string, id: string): void {
    if (res.writableFinished || res.destroyed || typeof res.once !== 'function') {
      this.end(name, id);
      return;
    }
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.end(name, id);
    };
    res.once('finish', end);
    res.once('close', end);
  }
}

// Session names are identifiers (no NUL), so the pair never collides.
const keyOf = (name: string, id: string) => `${name}\u0000${id}`;
