import type { IncomingMessage } from 'node:http';
import { Logger } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import { SessionService } from 'nest-sessions';
import type { Socket } from 'socket.io';

/**
 * Lets through the handshakes of this app's own pages only (README, "Check the Origin of the
 * handshake"): the session cookie rides along with any page of the same site, a sibling subdomain's
 * included. The app's origin is the host the browser asked for, so the sample works on any host;
 * it compares hosts, not schemes, and behind a proxy that rewrites the Host header it refuses the
 * app's own pages: a real app lists its origins (the README's `ORIGINS`).
 */
function fromOurPages(req: IncomingMessage): boolean {
  const query = new URL(req.url ?? '/', 'http://localhost').searchParams;
  if (query.get('transport') === 'polling' && query.has('j')) return false; // JSONP polling: a <script> of any page
  const origin = req.headers.origin;
  if (origin !== undefined) {
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }
  const site = req.headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin';
}

/**
 * The live "signed in as" badge of the home page, over socket.io. The socket carries the browser's
 * session cookie: `SessionService.load(client)` reads the session of the tab's visitor, and the
 * socket then hangs on that session, so a sign-out (in this tab or any other) disconnects it and
 * the badge says so at once.
 */
@WebSocketGateway({
  allowRequest: (req: IncomingMessage, callback: (error: string | null, allowed: boolean) => void) => callback(null, fromOurPages(req)),
})
export class PresenceGateway implements OnGatewayConnection {
  private readonly logger = new Logger(PresenceGateway.name);

  constructor(private readonly sessions: SessionService) {}

  async handleConnection(client: Socket): Promise<void> {
    try {
      const user = (await this.sessions.load(client)).get('user');
      client.emit('presence', user === undefined ? { signedIn: false } : { signedIn: true, name: user.name });
    } catch (error) {
      // A store that is down: Nest does not await this hook, so nothing else would catch it. The
      // session did not end: the badge says the server cannot tell for now (a reload asks again).
      this.logger.error(`presence: ${(error as Error).message}`);
      client.emit('presence', { unavailable: true });
    }
  }
}
