import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The few things the session engine needs from a platform's request and response, so that the
 * session logic never asks which platform it runs on.
 */
export interface PlatformAdapter {
  rawResponse(res: any): ServerResponse;
  headersSent(res: any): boolean;
  appendSetCookie(res: any, value: string): void;
  /** Sets the header unless the handler already set one. */
  setHeaderIfAbsent(res: any, name: string, value: string): void;
  /** The request came over HTTPS (as the app's proxy settings see it). */
  isSecure(req: any): boolean;
}

const expressAdapter: PlatformAdapter = {
  rawResponse: (res: ServerResponse) => res,
  headersSent: (res: ServerResponse) => res.headersSent,
  appendSetCookie(res: ServerResponse & { append?: (name: string, value: string) => void }, value) {
    if (typeof res.append === 'function') return res.append('Set-Cookie', value);
    appendRawSetCookie(res, value);
  },
  setHeaderIfAbsent(res: ServerResponse, name, value) {
    if (!res.hasHeader(name)) res.setHeader(name, value);
  },
  isSecure: (req: IncomingMessage & { secure?: boolean }) =>
    req.secure ?? (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true,
};

interface FastifyReplyLike {
  raw: ServerResponse;
  sent?: boolean;
  header(name: string, value: string): unknown;
  getHeader(name: string): unknown;
}

const fastifyAdapter: PlatformAdapter = {
  rawResponse: (reply: FastifyReplyLike) => reply.raw,
  headersSent: (reply: FastifyReplyLike) => reply.raw.headersSent || reply.sent === true,
  // Fastify's reply.header appends to an existing set-cookie instead of replacing it.
  appendSetCookie: (reply: FastifyReplyLike, value) => void reply.header('set-cookie', value),
  setHeaderIfAbsent(reply: FastifyReplyLike, name, value) {
    if (reply.getHeader(name) === undefined && !reply.raw.hasHeader(name)) reply.header(name, value);
  },
  isSecure: (req: { protocol?: string }) => req.protocol === 'https',
};

/** Picks the adapter for a response object: a Fastify reply wraps the raw response, Express extends it. */
export function adapterFor(res: unknown): PlatformAdapter {
  const candidate = res as { raw?: unknown; header?: unknown };
  return candidate.raw !== undefined && typeof candidate.header === 'function' ? fastifyAdapter : expressAdapter;
}

/** Adds a Set-Cookie value to a raw response, keeping the ones already there. */
export function appendRawSetCookie(res: ServerResponse, value: string): void {
  const existing = res.getHeader('set-cookie');
  if (existing === undefined) res.setHeader('set-cookie', value);
  else res.setHeader('set-cookie', Array.isArray(existing) ? [...existing, value] : [String(existing), value]);
}
