import { Logger } from '@nestjs/common';
import { WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import { SessionService } from 'nest-sessions';
import type { Socket } from 'socket.io';

/**
 * The live "signed in as" badge of the home page, over socket.io. The socket carries the browser's
 * session cookie: `SessionService.load(client)` reads the session of the tab's visitor, and the
 * socket then hangs on that session, so a sign-out (in this tab or any other) disconnects it and
 * the badge says so at once.
 */
@WebSocketGateway()
export class PresenceGateway implements OnGatewayConnection {
  private readonly logger = new Logger(PresenceGateway.name);

  constructor(private readonly sessions: SessionService) {}

  async handleConnection(client: Socket): Promise<void> {
    try {
      const user = (await this.sessions.load(client)).get('user');
      client.emit('presence', user === undefined ? { signedIn: false } : { signedIn: true, name: user.name });
    } catch (error) {
      // A store that is down: Nest does not await this hook, so nothing else would catch it.
      this.logger.error(`presence: ${(error as Error).message}`);
      client.disconnect(true);
    }
  }
}
