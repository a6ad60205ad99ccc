import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The few things the session engine needs from a platform's request and response, so that the
 * session logic never asks which platform it runs on. Cookies go out through the raw response
 * (`response-gate.ts`), the same on both.
 */
export interface PlatformAdapter {
  rawResponse(res: any): ServerResponse;
  /**
   * Whether `secure: 'auto'` adds `Secure`: the request came over HTTPS as the app's proxy settings
   * see it, or a proxy says it did, trusted or not (adding `Secure` never exposes a cookie; a client
   * that lies only keeps its own cookie off plain HTTP).
   */
  isSecure(req: any): boolean;
  /** The client's address as the app's proxy settings see it (Express `req.ip`, Fastify `request.ip`). */
  clientIp(req: any): string | undefined;
}

const FORWARDED_PROTO_HTTPS = /^\s*https\s*(,|$)/i;
const FORWARDED_HTTPS = /^[^,]*?(^|[;\s])proto=("?)https\2\s*($|[;,])/i;

/** `X-Forwarded-Proto: https` or `Forwarded: proto=https`, each in its first element: the proxy nearest the client saw HTTPS. */
function forwardedHttps(headers: Record<string, unknown> | undefined): boolean {
  if (headers === undefined) return false;
  const proto = headers['x-forwarded-proto'];
  if (typeof proto === 'string' && FORWARDED_PROTO_HTTPS.test(proto)) return true;
  const forwarded = headers.forwarded;
  return typeof forwarded === 'string' && FORWARDED_HTTPS.test(forwarded);
}

const expressAdapter: PlatformAdapter = {
  rawResponse: (res: ServerResponse) => res,
  isSecure: (req: IncomingMessage & { secure?: boolean }) =>
    (req.secure ?? (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true) || forwardedHttps(req.headers),
  clientIp: (req: IncomingMessage & { ip?: string }) => req.ip ?? req.socket?.remoteAddress,
};

const fastifyAdapter: PlatformAdapter = {
  rawResponse: (reply: { raw: ServerResponse }) => reply.raw,
  isSecure: (req: { protocol?: string; headers?: Record<string, unknown> }) => req.protocol === 'https' || forwardedHttps(req.headers),
  clientIp: (req: { ip?: string }) => req.ip,
};

/** Picks the adapter for a response object: a Fastify reply wraps the raw response, Express extends it. */
export function adapterFor(res: unknown): PlatformAdapter {
  const candidate = res as { raw?: unknown; header?: unknown };
  return candidate.raw !== undefined && typeof candidate.header === 'function' ? fastifyAdapter : expressAdapter;
}
