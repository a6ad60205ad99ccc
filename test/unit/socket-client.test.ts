import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SessionError, SessionService } from '../../src/index.js';
import { SessionEngine } from '../../src/lifecycle/session-engine.js';
import { socketClient } from '../../src/gateways/socket-client.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const sessions = new SessionService(new SessionEngine({ secret: SECRET }));

/** A `ws` WebSocket as a gateway gets it, with `_socket` (the network socket ws keeps) as described. */
function webSocket(socket?: PropertyDescriptor): object {
  const client = Object.assign(new EventEmitter(), { readyState: 1, close() {} });
  if (socket !== undefined) Object.defineProperty(client, '_socket', socket);
  return client;
}

describe("SessionService.load(client) on a ws WebSocket whose upgrade's Cookie header is out of reach", () => {
  beforeEach(() => void vi.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined)); // the errors are logged where made
  afterEach(() => void vi.restoreAllMocks());

  it('without the network socket ws keeps: a SessionError that says so, never a TypeError', async () => {
    const missing = /this ws WebSocket does not show the network socket it runs on/;
    await expect(sessions.load(webSocket())).rejects.toThrow(missing);
    await expect(sessions.load(webSocket({ value: null }))).rejects.toThrow(missing);
    const throwing = sessions.load(webSocket({ get: () => { throw new TypeError("Cannot read properties of undefined (reading 'socket')"); } }));
    await expect(throwing).rejects.toBeInstanceOf(SessionError);
    await expect(throwing).rejects.toThrow(missing);
  });

  it("whose upgrade the app's HTTP server never saw: a SessionError that names a gateway on a port of its own", async () => {
    await expect(sessions.load(webSocket({ value: new EventEmitter() }))).rejects.toThrow(
      /Session 'default': the upgrade request of this ws WebSocket did not reach the app's HTTP server.*a port of its own/,
    );
  });
});

describe("the Cookie header of a socket.io socket's handshake", () => {
  /** A socket.io `Socket` whose handshake had `query`. */
  const ioSocket = (query: Record<string, unknown>) => ({ handshake: { headers: { cookie: 'sid=x' }, query }, connected: true, disconnect() {}, once() {} });

  it('is withheld from a JSONP polling handshake, which a <script> tag can make', () => {
    expect(socketClient(ioSocket({ EIO: '4', transport: 'polling', j: '0' }))?.cookieHeader()).toBe('');
  });

  it("is read for a WebSocket or XHR polling handshake whose query has a 'j' of the app's own", () => {
    expect(socketClient(ioSocket({ EIO: '4', transport: 'websocket', j: 'app' }))?.cookieHeader()).toBe('sid=x');
    expect(socketClient(ioSocket({ EIO: '4', transport: 'polling' }))?.cookieHeader()).toBe('sid=x');
  });
});
