import type { IncomingMessage } from 'node:http';

/**
 * The few things sessions need from a gateway's client, whichever platform made it: the Cookie
 * header of its handshake, a way to end it, and its close. Nothing of `socket.io` or `ws` is
 * imported: a socket.io `Socket` carries its handshake's headers (`handshake.headers`); a `ws`
 * `WebSocket` carries nothing of its upgrade request, so the app's HTTP server tags the upgraded
 * TCP socket with the request's Cookie header on its way (`tagUpgrades`), and the WebSocket is read
 * through the TCP socket it runs on.
 */
export interface SocketClient {
  /** The Cookie header of the handshake, or why it cannot be known (a `ws` WebSocket whose upgrade the library never saw). */
  cookieHeader(): string | { readonly unknown: string };
  /** The connection is still open. */
  isOpen(): boolean;
  /** Ends the connection: its session ended. */
  end(): void;
  /** Calls `listener` once, when the connection is gone. */
  onClose(listener: () => void): void;
}

const kCookieHeader = Symbol('nest-sessions:upgrade-cookie');

interface IoSocket {
  connected: boolean;
  handshake: { headers: Record<string, string | string[] | undefined>; query?: Record<string, unknown> };
  disconnect(close?: boolean): unknown;
  once(event: 'disconnect', listener: () => void): unknown;
}

interface WsSocket {
  readyState: number;
  close(code?: number, reason?: string): void;
  once(event: 'close', listener: () => void): unknown;
}

/** The close code a `ws` client gets when its session ended: 1008, policy violation. */
export const SESSION_ENDED_CLOSE_CODE = 1008;

function isIoSocket(client: unknown): client is IoSocket {
  const handshake = (client as { handshake?: { headers?: unknown } }).handshake;
  return typeof handshake === 'object' && handshake !== null && typeof handshake.headers === 'object' && typeof (client as IoSocket).disconnect === 'function';
}

function isWsSocket(client: unknown): client is WsSocket {
  return typeof (client as WsSocket).readyState === 'number' && typeof (client as WsSocket).close === 'function' && typeof (client as WsSocket).once === 'function';
}

/** Whether `value` is a gateway's client (a socket.io `Socket` or a `ws` `WebSocket`). */
export function isSocketClient(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (isIoSocket(value) || isWsSocket(value));
}

/** The platform side of a gateway's client; undefined for anything else. */
export function socketClient(client: unknown): SocketClient | undefined {
  if (typeof client !== 'object' || client === null) return undefined;
  if (isIoSocket(client)) {
    return {
      cookieHeader: () => (isJsonp(client) ? '' : (headerText(client.handshake.headers.cookie) ?? '')),
      isOpen: () => client.connected,
      end: () => void client.disconnect(true),
      onClose: (listener) => void client.once('disconnect', listener),
    };
  }
  if (isWsSocket(client)) {
    return {
      cookieHeader: () => upgradeCookie(client),
      isOpen: () => client.readyState === 1,
      end: () => client.close(SESSION_ENDED_CLOSE_CODE, 'Session ended'),
      onClose: (listener) => void client.once('close', listener),
    };
  }
  return undefined;
}

/**
 * The Cookie header of the upgrade request a `ws` WebSocket came from, found on the TCP socket it
 * runs on (`WebSocket#_socket`, a property of ws' own: read with care, as a ws release may change it).
 */
function upgradeCookie(client: object): string | { readonly unknown: string } {
  let socket: unknown;
  try {
    socket = (client as { _socket?: unknown })._socket;
  } catch {
    socket = undefined;
  }
  if (typeof socket !== 'object' || socket === null) {
    return { unknown: 'this ws WebSocket does not show the network socket it runs on (ws 8 keeps it as WebSocket#_socket, which this ws release does not), so the Cookie header of its upgrade request cannot be found; use ws 8, or socket.io' };
  }
  const header = (socket as Record<symbol, unknown>)[kCookieHeader];
  if (typeof header === 'string') return header;
  return {
    unknown: "the upgrade request of this ws WebSocket did not reach the app's HTTP server, where its Cookie header is read: the gateway listens on a port of its own (@WebSocketGateway(port)) or on a server of its own; serve it on the app's HTTP server (@WebSocketGateway() without a port), or use socket.io",
  };
}

/**
 * A socket.io handshake over engine.io's JSONP polling (a polling handshake with `j` in its query,
 * as engine.io tells it): a `<script>` tag can make one from any page of the site (no `Origin`, the
 * cookie sent) and run the answer, which hands that page the connection id. No socket.io client
 * uses JSONP: such a socket gets no session. A `j` of the app's own on a WebSocket handshake is no JSONP.
 */
function isJsonp(client: IoSocket): boolean {
  const query = client.handshake.query;
  return typeof query === 'object' && query !== null && query.transport === 'polling' && typeof query.j === 'string';
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join('; ') : value;
}

/** Keeps the Cookie header of an upgrade request on the TCP socket it upgrades. */
function tagUpgrade(request: IncomingMessage, socket: object): void {
  (socket as Record<symbol, unknown>)[kCookieHeader] = request.headers.cookie ?? '';
}

/**
 * Makes the Cookie header of every upgrade request that reaches `server` readable from the `ws`
 * WebSocket it becomes. Added before the listeners already there (those of the `ws` and socket.io
 * servers that share the app's HTTP server), and only where there are some: a server with no upgrade
 * listener must keep refusing upgrades.
 */
export function tagUpgrades(server: unknown): void {
  const emitter = server as { listenerCount?(event: string): number; listeners(event: string): unknown[]; prependListener(event: string, listener: (...args: any[]) => void): unknown } | undefined;
  if (typeof emitter?.listenerCount !== 'function' || emitter.listenerCount('upgrade') === 0) return;
  if (emitter.listeners('upgrade').includes(tagUpgrade)) return;
  emitter.prependListener('upgrade', tagUpgrade);
}
