import { ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import { HttpException, HttpStatus, Logger } from '@nestjs/common';
import { SessionStoreError, SessionTooLargeError, SessionValidationError } from '../session/session.errors.js';
import { mergeIntoArray, mergeIntoObject, sendErrorResponse, setOnResponse } from './response-headers.js';
import { countReplacedResponse } from '../observability/session-telemetry.js';

/** What a gated response asks of its request's sessions. */
export interface ResponseSaver {
  /**
   * Saves what changed and gives the cookies for the response's head: at once, or once the store
   * writes have finished. Throws, or rejects, with the error the response must become instead.
   */
  saveForResponse(headersSent: boolean): string[] | undefined | Promise<string[] | undefined>;
  /** The response answers GraphQL resolvers: an error sent instead of it is shaped as a GraphQL response. */
  readonly graphql?: boolean;
  /** For GraphQL: how many operations the request carried as a batch (a JSON array); undefined for one. */
  graphqlBatch?(): number | undefined;
}

// Where a gated response is:
/** Nothing written yet: the first call saves the sessions. */
const OPEN = 0;
/** The save waits for a store write: the calls made meanwhile are held (`Gate.held`), and replayed once it has landed. */
const HOLDING = 1;
/** Saved: calls go through, the cookies joining the head. */
const PASSED = 2;
/** Saved, and body bytes went out after the head (or a session changed after it): the end saves once more, without a cookie. */
const STREAMING = 3;
/** The save failed: an error response went out instead, and later calls are dropped. */
const REPLACED = 4;
type Phase = typeof OPEN | typeof HOLDING | typeof PASSED | typeof STREAMING | typeof REPLACED;

const WRITE_HEAD = 0;
const WRITE = 1;
const END = 2;
const FLUSH_HEADERS = 3;

/** The calls made while a store write runs (`HOLDING`), replayed in order once it has landed. */
interface Held {
  readonly calls: [number, unknown[]][];
  /**
   * An `end` is among them: the response is complete, though it does not look sent yet. Later calls
   * (a framework that sends again because the response looked unsent) are dropped.
   */
  ended: boolean;
  /** Body bytes held; past the response's high-water mark, held writes ask the writer to wait for 'drain'. */
  bytes: number;
  /** A held write returned false: 'drain' is owed once the held calls have gone out. */
  drainOwed: boolean;
}

interface Gate {
  saver: ResponseSaver;
  phase: Phase;
  /** The phase a `HOLDING` response passes to once its write has landed: `PASSED`, or `STREAMING` when a session changed meanwhile. */
  afterHold: typeof PASSED | typeof STREAMING;
  /** Cookies waiting to join the head. */
  cookies: string[] | undefined;
  /** Held calls, from the first one held while `HOLDING` until they are replayed or dropped. */
  held: Held | undefined;
  writeHead: ServerResponse['writeHead'];
  write: ServerResponse['write'];
  end: ServerResponse['end'];
  flushHeaders: ServerResponse['flushHeaders'];
}

/** Each gated response's state, on the response itself (a WeakMap entry per response slows the GC down). */
const kGate = Symbol('nest-sessions:response-gate');
type GatedResponse = ServerResponse & { [kGate]?: Gate };
/** Per prototype, one that puts the gated methods in front of it. */
const gatedPrototypes = new WeakMap<object, object>();
const logger = new Logger('SessionModule');

/**
 * Makes a raw response save its request's sessions as it leaves, whoever writes it (a returned
 * value, an exception filter, `@Res()`, a redirect, a file, a stream): the first of `writeHead`,
 * `write`, `end` or `flushHeaders` saves, and the cookies join the head. While a store write runs,
 * the head and body are held; if the write fails, the response becomes a 503 instead. Shared
 * functions and one object per response, no closure per request.
 */
export function gateResponse(res: ServerResponse, saver: ResponseSaver): void {
  const gatedRes = res as GatedResponse;
  if (gatedRes[kGate] !== undefined) return;
  gatedRes[kGate] = {
    saver,
    phase: res.headersSent ? STREAMING : OPEN,
    afterHold: PASSED,
    cookies: undefined,
    held: undefined,
    // eslint-disable-next-line @typescript-eslint/unbound-method -- the originals are called with this response as `this`
    writeHead: res.writeHead,
    // eslint-disable-next-line @typescript-eslint/unbound-method
    write: res.write,
    // eslint-disable-next-line @typescript-eslint/unbound-method
    end: res.end,
    // eslint-disable-next-line @typescript-eslint/unbound-method
    flushHeaders: res.flushHeaders,
  };
  const prototype = Object.getPrototypeOf(res) as object;
  const patched = Object.hasOwn(res, 'writeHead') || Object.hasOwn(res, 'write') || Object.hasOwn(res, 'end') || Object.hasOwn(res, 'flushHeaders');
  if (prototype === ServerResponse.prototype || patched) {
    // A plain response (Fastify's), or one whose methods middleware already replaced (compression):
    // the gated methods go on the response itself, in front of whatever is there.
    res.writeHead = gatedWriteHead;
    res.write = gatedWrite as ServerResponse['write'];
    res.end = gatedEnd as ServerResponse['end'];
    res.flushHeaders = gatedFlushHeaders;
    return;
  }
  // An Express response: its prototype is set per request, and every property added to it costs
  // microseconds; a prototype with the gated methods in front of the app's costs one swap.
  let gated = gatedPrototypes.get(prototype);
  if (gated === undefined) {
    const method = (value: unknown): PropertyDescriptor => ({ value, writable: true, configurable: true });
    gated = Object.create(prototype, {
      writeHead: method(gatedWriteHead),
      write: method(gatedWrite),
      end: method(gatedEnd),
      flushHeaders: method(gatedFlushHeaders),
    }) as object;
    gatedPrototypes.set(prototype, gated);
  }
  Object.setPrototypeOf(res, gated);
}

/** Whether the head has really gone out: a held response only looks sent to the app. */
export function headGone(res: ServerResponse): boolean {
  const gate = (res as GatedResponse)[kGate];
  return gate?.held !== undefined ? false : res.headersSent;
}

/** A session changed after the head went out: the response saves it again (without a cookie) as it ends. */
export function saveAgainAtEnd(res: ServerResponse): void {
  const gate = (res as GatedResponse)[kGate];
  if (gate?.phase === PASSED) gate.phase = STREAMING;
  else if (gate?.phase === HOLDING) gate.afterHold = STREAMING;
}

/** Whether the response was replaced by an error (its save failed). */
export function responseReplaced(res: ServerResponse): boolean {
  return (res as GatedResponse)[kGate]?.phase === REPLACED;
}

function gatedWriteHead(this: GatedResponse, ...args: unknown[]): ServerResponse {
  const gate = this[kGate]!;
  if (gate.phase === OPEN) save(this, gate, false);
  if (gate.phase === HOLDING) return hold(this, gate, WRITE_HEAD, args);
  if (gate.phase === REPLACED) return this;
  const cookies = gate.cookies;
  if (cookies !== undefined) {
    gate.cookies = undefined;
    const last = args.length - 1;
    const headers = last >= 1 && typeof args[last] === 'object' && args[last] !== null ? args[last] : undefined;
    // Into a copy: an app may pass the same headers object to every response, and a session
    // cookie left in it would go to every later visitor.
    if (headers === undefined) setOnResponse(this, cookies);
    else if (Array.isArray(headers)) mergeIntoArray(this, (args[last] = [...headers] as unknown[]), cookies);
    else mergeIntoObject(this, (args[last] = { ...(headers as OutgoingHttpHeaders) }), cookies);
  }
  return (gate.writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
}

function gatedWrite(this: GatedResponse, ...args: unknown[]): boolean {
  const gate = this[kGate]!;
  if (gate.phase === OPEN) save(this, gate, this.headersSent);
  if (gate.phase === HOLDING) {
    hold(this, gate, WRITE, args);
    const held = gate.held!;
    const chunk = args[0];
    held.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : ((chunk as Uint8Array | undefined)?.byteLength ?? 0);
    if (held.bytes < this.writableHighWaterMark) return true;
    // A stream piped into a held response waits instead of being read into memory.
    held.drainOwed = true;
    return false;
  }
  if (gate.phase === REPLACED) {
    callBack(args);
    return true;
  }
  gate.phase = STREAMING;
  flushCookies(this, gate);
  return (gate.write as (...a: unknown[]) => boolean).apply(this, args);
}

function gatedEnd(this: GatedResponse, ...args: unknown[]): ServerResponse {
  const gate = this[kGate]!;
  if (gate.phase === OPEN || gate.phase === STREAMING) save(this, gate, this.headersSent);
  if (gate.phase === HOLDING) return hold(this, gate, END, args);
  if (gate.phase === REPLACED) {
    callBack(args);
    return this;
  }
  flushCookies(this, gate);
  return (gate.end as (...a: unknown[]) => ServerResponse).apply(this, args);
}

function gatedFlushHeaders(this: GatedResponse): void {
  const gate = this[kGate]!;
  if (gate.phase === OPEN) save(this, gate, false);
  if (gate.phase === HOLDING) {
    hold(this, gate, FLUSH_HEADERS, []);
    return;
  }
  if (gate.phase === REPLACED) return;
  flushCookies(this, gate);
  gate.flushHeaders.call(this);
}

function save(res: GatedResponse, gate: Gate, headersSent: boolean): void {
  let result: string[] | undefined | Promise<string[] | undefined>;
  try {
    result = gate.saver.saveForResponse(headersSent);
  } catch (error) {
    fail(res, gate, error);
    return;
  }
  if (result instanceof Promise) {
    gate.phase = HOLDING;
    gate.afterHold = PASSED;
    result.then(
      (cookies) => release(res, gate, cookies),
      (error: unknown) => fail(res, gate, error),
    );
    return;
  }
  gate.phase = PASSED;
  if (!headersSent) gate.cookies = result;
}

function hold(res: GatedResponse, gate: Gate, call: number, args: unknown[]): GatedResponse {
  if (gate.held?.ended === true) {
    callBack(args);
    return res;
  }
  // To the app and its framework, a held response looks as written as it would be: nobody sends
  // a second response (an error for an "unanswered" request) while the first one waits. Defined
  // once, never deleted (a deleted property would slow every later access to the response).
  if (!Object.hasOwn(res, 'headersSent')) Object.defineProperties(res, LOOKS_SENT);
  const held = (gate.held ??= { calls: [], ended: false, bytes: 0, drainOwed: false });
  held.calls.push([call, args]);
  if (call === END) held.ended = true;
  return res;
}

/** `headersSent` and `writableEnded` as Node's own getters compute them, but true while held. */
const LOOKS_SENT: PropertyDescriptorMap = {
  headersSent: {
    get(this: GatedResponse & { _header?: unknown }) {
      return this[kGate]!.held !== undefined || Boolean(this._header);
    },
    configurable: true,
  },
  writableEnded: {
    get(this: GatedResponse & { finished: boolean }) {
      return this[kGate]!.held?.ended === true || this.finished;
    },
    configurable: true,
  },
};

/** The store writes finished: the held calls go out, with the cookies. */
function release(res: GatedResponse, gate: Gate, cookies: string[] | undefined): void {
  const held = gate.held;
  gate.phase = gate.afterHold;
  gate.held = undefined;
  if (!res.headersSent) gate.cookies = cookies;
  if (held === undefined) return;
  for (const [call, args] of held.calls) {
    if (call === WRITE_HEAD && Boolean((res as { _header?: unknown })._header)) {
      // Held, a second head did not throw to the app as it would have; it cannot go out either.
      logger.warn('A response wrote its head twice while its session was being saved; the second head is dropped');
      continue;
    }
    try {
      if (call === WRITE_HEAD) gatedWriteHead.apply(res, args);
      else if (call === WRITE) gatedWrite.apply(res, args);
      else if (call === END) gatedEnd.apply(res, args);
      else gatedFlushHeaders.call(res);
    } catch (error) {
      // The call would have thrown to the app (an invalid header value, say); it cannot any more, and
      // the response must still end: with a 500 if its head has not gone out, else cut short.
      logger.error(`Sending a response held while its session was saved failed: ${(error as Error)?.message ?? String(error)}`);
      if (res.headersSent) res.destroy(error as Error);
      else replace(res, gate, HttpStatus.INTERNAL_SERVER_ERROR, undefined);
      return;
    }
  }
  if (held.drainOwed) res.emit('drain');
}

/** The session could not be saved: the response becomes the error's status with a generic body. */
function fail(res: GatedResponse, gate: Gate, error: unknown): void {
  if (!(error instanceof SessionStoreError || error instanceof SessionTooLargeError || error instanceof SessionValidationError)) {
    // Store failures, sizes and refused values were logged where they happened; anything else is logged here.
    logger.error(`Saving the session failed: ${(error as Error)?.message ?? String(error)}`, (error as Error)?.stack);
  }
  // What really went out, not what a held response shows the app.
  if (Boolean((res as { _header?: unknown })._header) || res.finished) {
    // Too late to answer with an error: let the response finish as it was written.
    release(res, gate, undefined);
    return;
  }
  const heldHead = gate.held?.calls.find(([call]) => call === WRITE_HEAD);
  const status = error instanceof HttpException ? error.getStatus() : HttpStatus.INTERNAL_SERVER_ERROR;
  countReplacedResponse(gate.saver, status);
  // Headers the head was to carry (Fastify passes its own to writeHead): kept, but for the body's.
  replace(res, gate, status, heldHead?.[1][heldHead[1].length - 1]);
}

/** Sends `status` with a generic JSON body instead of whatever was held; later calls are dropped. */
function replace(res: GatedResponse, gate: Gate, status: number, headers: unknown): void {
  const held = gate.held;
  gate.phase = REPLACED;
  gate.held = undefined;
  for (const [, args] of held?.calls ?? []) callBack(args);
  try {
    sendErrorResponse(res, status, headers, gate.saver, gate.writeHead, gate.end);
  } catch (sendError) {
    logger.error(`Sending the error response failed: ${(sendError as Error)?.message ?? String(sendError)}`);
    res.destroy();
  }
  if (held?.drainOwed === true) res.emit('drain');
}

/** A write or end that will never happen still calls its callback, so nothing waits for it forever. */
function callBack(args: unknown[]): void {
  const last = args[args.length - 1];
  if (typeof last === 'function') process.nextTick(last);
}

function flushCookies(res: ServerResponse, gate: Gate): void {
  if (gate.cookies === undefined || res.headersSent) return;
  setOnResponse(res, gate.cookies);
  gate.cookies = undefined;
}

