import assert from 'node:assert/strict';

/** What a case answers when what it checks does not apply to this store (a missing optional method). */
export interface Skipped {
  skipped: string;
}

/** One promise a store makes, named for it, checked against a fresh subject. */
export interface SuiteCase<T> {
  name: string;
  run(subject: T): void | Skipped | Promise<void | Skipped>;
}

/** A list of cases and how to make (and clean up) what each one runs against. */
export interface Suite<T> {
  cases: readonly SuiteCase<T>[];
  /** The name of the list of case names, for error messages (`sessionStoreCaseNames`). */
  namesExport: string;
  setUp(): Promise<{ subject: T; tearDown: () => Promise<void> }>;
}

/** The outcome of one case; a skipped case counts as ok. */
export interface SessionStoreCaseResult {
  /** The case's name: the promise of the contract it checks. */
  name: string;
  /** Whether the store kept the promise (or the case was skipped). */
  ok: boolean;
  /** True when the case did not apply to this store (a missing optional method) or was named in `skip`. */
  skipped?: boolean;
  /** What the case threw, when it failed. */
  error?: unknown;
}

type TestBody = (...args: unknown[]) => Promise<void>;
type TestFn = (name: string, body: TestBody) => unknown;

/** The two functions of a test runner the suites need: vitest, jest, mocha and node:test all fit. */
export interface SessionStoreTestRunner {
  /** Groups the cases under a title: the runner's `describe`. */
  describe: (name: string, body: () => void) => unknown;
  /** Registers one case: the runner's `it` (or `test`), with its `skip` where it has one. */
  it: TestFn & {
    /** Registers a case that does not run: the runner's `it.skip`. */
    skip?: TestFn;
  };
}

/** Options every suite takes. */
export interface SuiteOptions {
  /** Names of cases this store legitimately cannot honour (as listed by the suite's case names). */
  skip?: readonly string[];
  /** Title of the `describe` block registered by the `define…Tests` function. */
  title?: string;
  /** The `check…` function only: a case that runs longer than this many ms fails. Default 10000. */
  timeout?: number;
}

/** Runs every case, one after the other, and reports each by name. */
export async function checkSuite<T>(suite: Suite<T>, options: SuiteOptions): Promise<SessionStoreCaseResult[]> {
  const skip = skipList(suite, options);
  const timeout = options.timeout ?? 10_000;
  const results: SessionStoreCaseResult[] = [];
  for (const c of suite.cases) {
    if (skip.has(c.name)) {
      results.push({ name: c.name, ok: true, skipped: true });
      continue;
    }
    try {
      const outcome = await withTimeout(runCase(c, suite), timeout, c.name);
      results.push(outcome === undefined ? { name: c.name, ok: true } : { name: c.name, ok: true, skipped: true });
    } catch (error) {
      results.push({ name: c.name, ok: false, error });
    }
  }
  return results;
}

/** Registers one test per case with the given runner, inside one `describe` block. */
export function defineSuite<T>(runner: SessionStoreTestRunner, suite: Suite<T>, options: SuiteOptions, title: string): void {
  const skip = skipList(suite, options);
  const { describe, it } = runner;
  describe(options.title ?? title, () => {
    for (const c of suite.cases) {
      if (skip.has(c.name)) {
        it.skip?.(c.name, async () => {});
        continue;
      }
      // Rest parameters keep the body's length at 0, so mocha does not wait for a `done` callback.
      it(c.name, async function (this: unknown, ...args: unknown[]) {
        const outcome = await runCase(c, suite);
        if (outcome !== undefined) skipFromInside(this, args[0], outcome.skipped);
      });
    }
  });
}

/** Runs one case on a fresh subject and always tears it down; a failed tear-down fails the case. */
async function runCase<T>(c: SuiteCase<T>, suite: Suite<T>): Promise<Skipped | undefined> {
  const { subject, tearDown } = await suite.setUp();
  let failure: { error: unknown } | undefined;
  let outcome: Skipped | undefined;
  try {
    outcome = (await c.run(subject)) ?? undefined;
  } catch (error) {
    failure = { error };
  }
  try {
    await tearDown();
  } catch (error) {
    failure ??= { error: new Error(`close() threw after the case "${c.name}"`, { cause: error }) };
  }
  if (failure) throw failure.error;
  return outcome;
}

/** Marks a test skipped from inside its body, in whichever way the runner offers (vitest and node:test pass a context, mocha binds `this`). */
function skipFromInside(self: unknown, context: unknown, note: string): void {
  const ctx = context as { skip?: (note?: string) => void } | undefined;
  if (typeof ctx?.skip === 'function') return ctx.skip(note);
  const mocha = self as { skip?: () => void } | undefined;
  if (typeof mocha?.skip === 'function') mocha.skip();
}

function skipList(suite: Suite<unknown>, options: SuiteOptions): Set<string> {
  const skip = new Set(options.skip ?? []);
  const names = new Set(suite.cases.map((c) => c.name));
  const unknown = [...skip].filter((name) => !names.has(name));
  assert.equal(unknown.length, 0, `options.skip names no case: ${JSON.stringify(unknown)}; use names from ${suite.namesExport}`);
  return skip;
}

async function withTimeout<T>(work: Promise<T>, ms: number, name: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`case "${name}" did not finish within ${ms} ms (options.timeout)`)), ms);
    timer.unref();
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
