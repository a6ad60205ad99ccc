import { request as httpRequest, type Agent } from 'node:http';

/** How long a request may go unanswered before it counts as hanging. */
export const HANG_MS = 10_000;

/** What a fault test's client saw of one request. */
export interface Answer {
  status: number; // 0: no HTTP answer (connection error, or nothing within HANG_MS)
  body: string;
  start: number;
  end: number;
  setCookie: string[];
}

/** A GET that always settles: with the response, or with status 0 and the error, never a rejection. */
export function get(agent: Agent, port: number, path: string, cookie?: string): Promise<Answer> {
  return new Promise((resolve) => {
    const start = Date.now();
    let settled = false;
    const finish = (status: number, body: string, setCookie: string[] = []) => {
      if (settled) return;
      settled = true;
      resolve({ status, body, start, end: Date.now(), setCookie });
    };
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, headers: cookie === undefined ? {} : { cookie } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => finish(res.statusCode ?? 0, Buffer.concat(chunks).toString(), res.headers['set-cookie'] ?? []));
      res.on('error', (err) => finish(0, err.message));
    });
    req.setTimeout(HANG_MS, () => req.destroy(new Error(`no answer within ${HANG_MS} ms`)));
    req.on('error', (err) => finish(0, err.message));
    req.end();
  });
}
