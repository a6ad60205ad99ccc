import { Logger } from '@nestjs/common';
import { isInternalKey } from '../session/session.constants.js';
import { reported, SessionConfigError, SessionValidationError } from '../session/session.errors.js';
import type { StandardSchemaV1 } from './standard-schema.js';

type Issue = StandardSchemaV1.Issue;
type Result = StandardSchemaV1.Result<unknown>;

/** The issues some session data has, each as its path and message: what a change may not add to. */
export type IssueSet = ReadonlySet<string>;

export const NO_ISSUES: IssueSet = new Set();

/** How many causes of stored sessions that do not match are remembered per session kind (each is logged once). */
const REMEMBERED_CAUSES = 100;
/** A key shown as it is in messages; any other is shown as `[*]`. */
const IDENTIFIER = /^[A-Za-z_$][\w$-]{0,63}$/;

/**
 * The schema of one session kind (`forRoot({ schema })`, `sessions: { name: { schema } }`): what a
 * stored session must match to be read, what a change may not break, and what must match when the
 * session is saved. Validates the user's data as it reads back (parsed from its JSON text), without
 * the library's own keys (`INTERNAL_KEY_PREFIX`); the schema's output (transforms, defaults) is never stored.
 */
export class SessionSchema {
  /** Issues of empty data: undefined until asked, null when the schema answered with a promise. */
  private emptyIssues: IssueSet | null | undefined;
  /** Causes of mismatches already logged (insertion order: the oldest is forgotten first). */
  private readonly logged = new Set<string>();
  private readonly logger = new Logger('SessionModule');

  private constructor(
    private readonly sessionName: string,
    private readonly props: StandardSchemaV1.Props,
  ) {}

  /** The checked `schema` option, or undefined; throws `SessionConfigError` naming `option`. */
  static from(value: unknown, option: string, sessionName: string): SessionSchema | undefined {
    if (value === undefined) return undefined;
    const props = (value !== null && (typeof value === 'object' || typeof value === 'function') ? (value as Partial<StandardSchemaV1>)['~standard'] : undefined) as
      | Partial<StandardSchemaV1.Props>
      | undefined;
    if (props === null || typeof props !== 'object' || typeof props.validate !== 'function') {
      throw new SessionConfigError(
        `${option} must be a Standard Schema (a zod, valibot or arktype schema, or any object with a '~standard' property that validates), got ${describe(value)}`,
      );
    }
    if (props.version !== 1) {
      throw new SessionConfigError(`${option}: Standard Schema version ${String(props.version)} is not supported; version 1 is`);
    }
    return new SessionSchema(sessionName, props as StandardSchemaV1.Props);
  }

  /**
   * Whether a stored session's data may be read: `false` when it does not match (logged once per
   * cause, without any value); otherwise the issues it has (undefined: to be found when needed).
   */
  acceptStored(texts: Readonly<Record<string, string>>): IssueSet | false | undefined | Promise<IssueSet | false | undefined> {
    const data = userData(texts);
    if (data === undefined) return undefined; // no data: what every new session starts as
    const result = this.run(data);
    if (isThenable(result)) return Promise.resolve(result).then((settled) => this.judgeStored(settled), (error: unknown) => this.judgeStored(thrown(error)));
    return this.judgeStored(result);
  }

  /**
   * The issues of `data` (the session's user data, undefined when empty), or undefined when the
   * schema answers with a promise.
   */
  issuesOf(data: Record<string, unknown> | undefined): IssueSet | undefined {
    if (data === undefined) {
      if (this.emptyIssues === undefined) this.emptyIssues = this.issuesNow({}) ?? null;
      return this.emptyIssues ?? undefined;
    }
    return this.issuesNow(data);
  }

  /**
   * Checks a change (`set` or `delete` of `key`) before it is made: throws `SessionValidationError`
   * when the data it would give (`after`, undefined when empty) has an issue the data had not
   * (`before`); issues it already had (a required key not set yet) wait for the save. Returns the
   * issues of the data after the change, undefined when not known (a schema that answers with a
   * promise: then the save checks).
   */
  checkChange(key: string, after: Record<string, unknown> | undefined, before: () => IssueSet | undefined, where: string): IssueSet | undefined {
    if (after === undefined) return this.issuesOf(undefined); // empty data is always accepted
    const result = this.run(after);
    if (isThenable(result)) {
      Promise.resolve(result).catch(() => undefined); // checked again, awaited, at the save
      return undefined;
    }
    const issues = result.issues;
    if (issues === undefined) return NO_ISSUES;
    const known = before();
    // An issue under the key is the change's own (the key's value is wholly the new one, or gone),
    // even when its message is the one a missing key had; elsewhere, only issues the data had not.
    const fresh = issues.filter((issue) =>
      issue instanceof ThrownIssue || keyOf(issue.path?.[0]) === key ? true : known !== undefined && !known.has(signature(issue)),
    );
    if (fresh.length > 0) {
      const issue = fresh[0];
      const path = exactPath(issue.path);
      throw reported(
        new SessionValidationError(
          `${where}: the session data would not match its schema ${at(issue.path, false)}: ${shapeMessage(issue.message)}`,
          path === '' ? key : path,
          { issues, cause: issue instanceof ThrownIssue ? issue.error : undefined },
        ),
      );
    }
    return new Set(issues.map(signature));
  }

  /**
   * Checks the session's data as it is about to be saved (`texts`: key → JSON text): the whole of it
   * must match (or be empty). Throws, or rejects, `SessionValidationError` naming the path.
   */
  checkSave(texts: Readonly<Record<string, string>>): Promise<void> | undefined {
    const data = userData(texts);
    if (data === undefined) return undefined;
    const result = this.run(data);
    if (isThenable(result)) return Promise.resolve(result).then((settled) => this.judgeSave(settled), (error: unknown) => this.judgeSave(thrown(error)));
    this.judgeSave(result);
    return undefined;
  }

  private judgeSave(result: Result): void {
    const issues = result.issues;
    if (issues === undefined) return;
    const issue = issues[0] ?? { message: '' };
    throw reported(
      new SessionValidationError(
        `Session '${this.sessionName}' does not match its schema ${at(issue.path, false)} (${shapeMessage(issue.message)}) as the response leaves, so none of the request's sessions was saved; every key the schema requires must be set by then, and a value changed in place must still match`,
        exactPath(issue.path),
        { issues, cause: issue instanceof ThrownIssue ? issue.error : undefined },
      ),
    );
  }

  private judgeStored(result: Result): IssueSet | false {
    const issues = result.issues;
    if (issues === undefined) return NO_ISSUES;
    const fresh: string[] = [];
    for (const issue of issues) {
      const cause = `${at(issue.path, true)}: ${shapeMessage(issue.message)}`;
      if (this.logged.has(cause)) continue;
      if (this.logged.size >= REMEMBERED_CAUSES) this.logged.delete(this.logged.values().next().value!);
      this.logged.add(cause);
      fresh.push(cause);
    }
    if (fresh.length > 0) {
      const shown = fresh.length > 5 ? [...fresh.slice(0, 5), `and ${fresh.length - 5} more`] : fresh;
      this.logger.warn(
        `Session '${this.sessionName}': a stored session does not match the schema and is read as no session (${shown.join('; ')}). Each cause is logged once; the record is left to expire.`,
      );
    }
    return false;
  }

  private issuesNow(data: Record<string, unknown>): IssueSet | undefined {
    const result = this.run(data);
    if (isThenable(result)) {
      Promise.resolve(result).catch(() => undefined);
      return undefined;
    }
    return result.issues === undefined ? NO_ISSUES : new Set(result.issues.map(signature));
  }

  /** The schema's verdict; a schema that throws, or answers with something else, is a failure of its own. */
  private run(data: Record<string, unknown>): Result | PromiseLike<Result> {
    let result: unknown;
    try {
      result = this.props.validate(data);
    } catch (error) {
      return thrown(error);
    }
    if (isThenable(result)) return result.then(asResult);
    return asResult(result);
  }
}

/** An issue standing for a schema that threw: its message names the error's class, never its text. */
class ThrownIssue implements Issue {
  readonly message: string;
  constructor(readonly error: unknown) {
    this.message = `the schema threw (${error instanceof Error ? error.name : typeof error})`;
  }
}

function thrown(error: unknown): Result {
  return { issues: [new ThrownIssue(error)] };
}

function asResult(value: unknown): Result {
  if (value !== null && typeof value === 'object') {
    const issues = (value as { issues?: unknown }).issues;
    if (issues === undefined || issues === null) return value as Result;
    if (Array.isArray(issues)) return { issues: issues.length > 0 ? issues.map(asIssue) : [{ message: 'the schema failed without an issue' }] };
  }
  return { issues: [{ message: 'the schema gave no Standard Schema result' }] };
}

/** An issue as the Standard Schema spec has it, whatever the schema gave: a malformed one is an issue at the root. */
function asIssue(value: unknown): Issue {
  if (value === null || typeof value !== 'object') return { message: 'the schema gave a malformed issue' };
  const { message, path } = value as { message?: unknown; path?: unknown };
  if (path === undefined || Array.isArray(path)) return value as Issue;
  return { message: typeof message === 'string' ? message : '' };
}

/** The user's data parsed from its stored JSON texts, without the library's own keys; undefined when there is none. */
function userData(texts: Readonly<Record<string, string>>): Record<string, unknown> | undefined {
  let data: Record<string, unknown> | undefined;
  for (const key of Object.keys(texts)) {
    if (isInternalKey(key)) continue; // the library's own: never the schema's business
    let value: unknown;
    try {
      value = JSON.parse(texts[key]);
    } catch {
      continue; // reads as absent, as `get()` has it
    }
    putValue((data ??= {}), key, value);
  }
  return data;
}

/** Sets `key` of a plain object as its own property, `__proto__` included. */
export function putValue(data: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(data, key, { value, enumerable: true, writable: true, configurable: true });
  else data[key] = value;
}

function keyOf(segment: PropertyKey | StandardSchemaV1.PathSegment | undefined): PropertyKey | undefined {
  return segment !== null && typeof segment === 'object' ? segment.key : segment;
}

/** Path and message, exact: told apart in memory, never logged. */
function signature(issue: Issue): string {
  const path = issue.path === undefined ? '' : issue.path.map((segment) => String(keyOf(segment))).join('\u0000');
  return `${path}\u0001${String(issue.message)}`;
}

/** The path as `SessionValidationError.path` gives it: `cart.items[0].price`, '' for the whole data. */
function exactPath(path: Issue['path']): string {
  let text = '';
  for (const segment of path ?? []) {
    const key = keyOf(segment);
    if (typeof key === 'number') text += `[${key}]`;
    else if (typeof key === 'string' && IDENTIFIER.test(key)) text += text === '' ? key : `.${key}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text;
}

/**
 * Where an issue is, for messages and logs: keys that look like identifiers as they are, any other
 * key as `[*]` (it could be data), array indexes as `[]` in a cause (one cause for every element).
 */
function at(path: Issue['path'], cause: boolean): string {
  if (path === undefined || path.length === 0) return 'at the root of the data';
  let text = '';
  for (const segment of path) {
    const key = keyOf(segment);
    if (typeof key === 'number') text += cause ? '[]' : `[${key}]`;
    else if (typeof key === 'string' && IDENTIFIER.test(key)) text += text === '' ? key : `.${key}`;
    else text += '[*]';
  }
  return `at ${text}`;
}

/**
 * A schema's message without the values it may quote: quoted text, numbers and booleans become
 * placeholders (`received "alice"` → `received "…"`), so a message can be logged and counted as
 * one cause whatever the value was.
 */
export function shapeMessage(message: unknown): string {
  const text = typeof message === 'string' ? message.slice(0, 400) : '';
  const shaped = text
    .replace(/"(?:[^"\\]|\\.)*"?/g, '"…"')
    .replace(/\d+(?:[.,]\d+)*(?:e[+-]?\d+)?/gi, '#')
    .replace(/\b(?:true|false)\b/g, '…')
    // eslint-disable-next-line no-control-regex -- control characters could forge log lines
    .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .trim();
  return shaped === '' ? 'invalid' : shaped.slice(0, 160);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  return typeof value === 'object' || typeof value === 'function' ? `${typeof value === 'function' ? 'a function' : 'an object'} without '~standard'` : `a ${typeof value}`;
}
