import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The few things the session engine needs from a platform's request and response, so that the
 * session logic never asks which platform it runs on. Cookies go out through the raw response
 * (`response-gate.ts`), the same on both.
 */
export interface PlatformAdapter {
  rawResponse(res: any): ServerResponse;
  /** The request came over HTTPS (as the app's proxy settings see it). */
  isSecure(req: any): boolean;
  /** The client's address as the app's proxy settings see it (Express `req.ip`, Fastify `request.ip`). */
  clientIp(req: any): string | undefined;
}

const expressAdapter: PlatformAdapter = {
  rawResponse: (res: ServerResponse) => res,
  isSecure: (req: IncomingMessage & { secure?: boolean }) =>
    req.secure ?? (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true,
  clientIp: (req: IncomingMessage & { ip?: string }) => req.ip ?? req.socket?.remoteAddress,
};

const fastifyAdapter: PlatformAdapter = {
  rawResponse: (reply: { raw: ServerResponse }) => reply.raw,
  isSecure: (req: { protocol?: string }) => req.protocol === 'https',
  clientIp: (req: { ip?: string }) => req.ip,
};

/** Picks the adapter for a response object: a Fastify reply wraps the raw response, Express extends it. */
export function adapterFor(res: unknown): PlatformAdapter {
  const candidate = res as { raw?: unknown; header?: unknown };
  return candidate.raw !== undefined && typeof candidate.header === 'function' ? fastifyAdapter : expressAdapter;
}
