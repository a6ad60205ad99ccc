import { randomBytes } from 'node:crypto';
import { serialize, type SerializeOptions } from 'cookie';
import {
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_SESSION,
  DEFAULT_STORE_TIMEOUT,
  MAX_LIFETIME,
  MIN_SECRET_LENGTH,
  TOUCH_FRACTION,
} from './session.constants.js';
import { SessionConfigError } from './session.errors.js';
import { SessionIdSigner } from './session-id.js';
import type { SessionCookieOptions, SessionModuleOptions, SessionOptions } from '../nest/session.options.js';
import { isClientSideStore, type AnySessionStore } from '../stores/session-store.interface.js';
import { MemoryStore } from '../stores/memory.store.js';
import { withoutUnsetOlder } from './secret-list.js';
import { SessionHandles } from '../user-sessions/session-handle.js';
import { SessionSchema } from '../schema/session-schema.js';

/** One session kind (the default one or a named one), its options checked and resolved once at startup. */
export interface SessionDefinition {
  readonly name: string;
  readonly store: AnySessionStore;
  /** The store keeps the data in the cookie itself. */
  readonly clientSide: boolean;
  readonly signer: SessionIdSigner;
  readonly cookieName: string;
  /** `cookie.secure` as given, or its default (see `defaultSecure`). */
  readonly secure: boolean | 'auto';
  /** `secure` is `'auto'`: decided per request. */
  readonly secureAuto: boolean;
  /** `; Path=/; HttpOnly; Secure; SameSite=Lax` and so on, built once. */
  readonly attributes: string;
  /** The same attributes without `Secure`, for `secure: 'auto'` over plain HTTP. */
  readonly attributesInsecure: string;
  /** A whole `Set-Cookie` value that deletes the cookie. */
  readonly clearCookie: string;
  readonly clearCookieInsecure: string;
  readonly cookieMaxAge: number | undefined;
  /** Cookie-stored sessions: the most bytes the cookie's name and value may take. */
  readonly cookieLimit: number;
  readonly idleTimeout: number;
  readonly absoluteTimeout: number | undefined;
  readonly storeTimeout: number;
  readonly touchAfter: number;
  /** What a tied session records about its device (`device`). */
  readonly recordUserAgent: boolean;
  readonly recordIp: boolean;
  readonly userVersion: ((userId: string) => string | number | undefined | PromiseLike<string | number | undefined>) | undefined;
  /** Seals and opens the handles `SessionService.sessionsOf()` lists (made on first use). */
  readonly handles: () => SessionHandles;
  /** The schema the session's data must match, if one was given. */
  readonly schema: SessionSchema | undefined;
}

export interface ResolvedSessions {
  readonly definitions: ReadonlyMap<string, SessionDefinition>;
  /** Options were given no secret: a random one is used for this process. */
  readonly ephemeralSecret: boolean;
  /** What to say about the missing secret: which option is unset, and what to do. */
  readonly secretAdvice: string;
}

/** `NODE_ENV=production`, read when the module starts: what decides the production defaults. */
export function inProduction(): boolean {
  return process.env.NODE_ENV === 'production';
}

/**
 * The `Secure` attribute when `cookie.secure` is not given: always in production, and wherever the
 * cookie cannot work without it (`SameSite=None`, a `__Host-` or `__Secure-` name); elsewhere
 * `'auto'`, so a developer's plain-HTTP client (a supertest agent, curl, Postman) keeps the session.
 */
export function defaultSecure(cookieName: string, sameSite: string | undefined): true | 'auto' {
  if (inProduction() || sameSite === 'none' || cookieName.startsWith('__Host-') || cookieName.startsWith('__Secure-')) return true;
  return 'auto';
}

const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks every option and resolves the defaults; throws `SessionConfigError` naming the option. */
export function resolveSessions(options: SessionModuleOptions = {}): ResolvedSessions {
  if (options === null || typeof options !== 'object') {
    throw new SessionConfigError('SessionModule options must be an object, e.g. SessionModule.forRoot({ secret: process.env.SESSION_SECRET })');
  }
  const storeTimeout = duration(options.storeTimeout, 'storeTimeout', 2 ** 31 - 1) ?? DEFAULT_STORE_TIMEOUT;
  if (options.interceptor !== undefined && options.interceptor !== 'route' && options.interceptor !== 'global') {
    throw new SessionConfigError(`interceptor must be 'route' or 'global', got ${describe(options.interceptor)}`);
  }
  const noSecret = options.secret === undefined;
  const rootSecrets = noSecret ? [randomBytes(48).toString('base64url')] : secrets(options.secret, 'secret');

  const definitions = new Map<string, SessionDefinition>();
  definitions.set(DEFAULT_SESSION, define(DEFAULT_SESSION, options, 'sid', rootSecrets, storeTimeout, ''));
  // Whether a session id is signed with `secret`: a server-side store's cookie is; a CookieStore seals its own.
  let rootSigns = !definitions.get(DEFAULT_SESSION)!.clientSide;
  const named = options.sessions ?? {};
  if (typeof named !== 'object') throw new SessionConfigError('sessions must be an object of named session options');
  for (const name of Object.keys(named)) {
    if (name === DEFAULT_SESSION) {
      throw new SessionConfigError(`sessions.${DEFAULT_SESSION}: the name '${DEFAULT_SESSION}' is the unnamed session; configure it at the top level`);
    }
    const own = named[name] ?? {};
    const ownSecrets = own.secret === undefined ? rootSecrets : secrets(own.secret, `sessions.${name}.secret`);
    const inherited: SessionOptions = {
      ...own,
      idleTimeout: own.idleTimeout ?? options.idleTimeout,
      absoluteTimeout: own.absoluteTimeout ?? options.absoluteTimeout,
      device: own.device ?? options.device,
      userVersion: own.userVersion ?? options.userVersion,
      cookie: { ...options.cookie, name: undefined, maxAge: undefined, ...own.cookie },
    };
    const def = define(name, inherited, name, ownSecrets, storeTimeout, `sessions.${name}.`);
    definitions.set(name, def);
    if (own.secret === undefined && !def.clientSide) rootSigns = true;
  }
  const seen = new Map<string, string>();
  for (const def of definitions.values()) {
    const other = seen.get(def.cookieName);
    if (other !== undefined) {
      throw new SessionConfigError(`sessions '${other}' and '${def.name}' both use the cookie name '${def.cookieName}'; give each its own cookie.name`);
    }
    seen.set(def.cookieName, def.name);
  }
  const ephemeralSecret = noSecret && rootSigns;
  // `secret: process.env.SESSION_SECRET` with the variable unset is the usual cause: say so.
  const secretAdvice = Object.hasOwn(options, 'secret')
    ? 'SessionModule.forRoot() was given secret: undefined: the environment variable it reads (such as SESSION_SECRET) is not set; set it to 32+ random characters (e.g. `openssl rand -base64 48`)'
    : 'Set SessionModule.forRoot({ secret: process.env.SESSION_SECRET }) with 32+ random characters (e.g. `openssl rand -base64 48`)';
  if (ephemeralSecret && inProduction()) {
    throw new SessionConfigError(`secret is required when NODE_ENV is production: without it every restart and every other instance signs users out. ${secretAdvice}`);
  }
  return { definitions, ephemeralSecret, secretAdvice };
}

function define(
  name: string,
  options: SessionOptions,
  defaultCookieName: string,
  signingSecrets: string[],
  storeTimeout: number,
  path: string,
): SessionDefinition {
  const store = options.store ?? new MemoryStore();
  checkStore(store, `${path}store`);
  const cookie: SessionCookieOptions = options.cookie ?? {};
  const cookieName = cookie.name ?? defaultCookieName;
  if (typeof cookieName !== 'string' || !COOKIE_NAME.test(cookieName)) {
    throw new SessionConfigError(`${path}cookie.name ${describe(cookieName)} is not a valid cookie name (letters, digits and !#$%&'*+-.^_\`|~ only)`);
  }
  const sameSite = cookie.sameSite ?? 'lax';
  if (sameSite !== 'lax' && sameSite !== 'strict' && sameSite !== 'none') {
    throw new SessionConfigError(`${path}cookie.sameSite must be 'lax', 'strict' or 'none', got ${describe(sameSite)}`);
  }
  const secure = cookie.secure ?? defaultSecure(cookieName, sameSite);
  if (secure !== true && secure !== false && secure !== 'auto') {
    throw new SessionConfigError(`${path}cookie.secure must be true, false or 'auto', got ${describe(secure)}`);
  }
  if (sameSite === 'none' && secure !== true) {
    throw new SessionConfigError(`${path}cookie.sameSite 'none' requires cookie.secure: true (browsers reject SameSite=None cookies without Secure)`);
  }
  const cookiePath = cookie.path ?? '/';
  if (cookieName.startsWith('__Host-') && (secure !== true || cookiePath !== '/' || cookie.domain !== undefined)) {
    throw new SessionConfigError(`${path}cookie.name '${cookieName}': a __Host- cookie needs secure: true, path '/' and no domain`);
  }
  if (cookieName.startsWith('__Secure-') && secure !== true) {
    throw new SessionConfigError(`${path}cookie.name '${cookieName}': a __Secure- cookie needs secure: true`);
  }
  const cookieMaxAge = duration(cookie.maxAge, `${path}cookie.maxAge`);
  const idleTimeout = duration(options.idleTimeout, `${path}idleTimeout`) ?? cookieMaxAge ?? DEFAULT_IDLE_TIMEOUT;
  const absoluteTimeout = duration(options.absoluteTimeout, `${path}absoluteTimeout`);
  const device = options.device ?? {};
  if (device !== false && (device === null || typeof device !== 'object')) {
    throw new SessionConfigError(`${path}device must be false or an object such as { userAgent: true, ip: false }, got ${describe(device)}`);
  }
  for (const key of ['userAgent', 'ip'] as const) {
    const value = device === false ? undefined : device[key];
    if (value !== undefined && typeof value !== 'boolean') throw new SessionConfigError(`${path}device.${key} must be true or false, got ${describe(value)}`);
  }
  if (options.userVersion !== undefined && typeof options.userVersion !== 'function') {
    throw new SessionConfigError(`${path}userVersion must be a function (userId) => the user's current version, got ${describe(options.userVersion)}`);
  }
  const schema = SessionSchema.from(options.schema, `${path}schema`, name);

  let handles: SessionHandles | undefined;
  const base: SerializeOptions = {
    path: cookiePath,
    domain: cookie.domain,
    httpOnly: cookie.httpOnly ?? true,
    sameSite,
    partitioned: cookie.partitioned,
    priority: cookie.priority,
  };
  const attributes = (withSecure: boolean) => attributesOf(cookieName, { ...base, secure: withSecure }, path);
  const clear = (withSecure: boolean) =>
    serialize(cookieName, '', { ...base, secure: withSecure, maxAge: 0, expires: new Date(0) });
  return {
    name,
    store,
    clientSide: isClientSideStore(store),
    signer: new SessionIdSigner(signingSecrets, name),
    cookieName,
    secure,
    secureAuto: secure === 'auto',
    attributes: attributes(secure !== false),
    attributesInsecure: attributes(false),
    clearCookie: clear(secure !== false),
    clearCookieInsecure: clear(false),
    cookieMaxAge,
    cookieLimit: isClientSideStore(store) ? (store.maxCookieSize ?? 4096) : 4096,
    idleTimeout,
    absoluteTimeout,
    storeTimeout,
    touchAfter: Math.floor(idleTimeout * TOUCH_FRACTION),
    recordUserAgent: device !== false && device.userAgent !== false,
    recordIp: device !== false && device.ip !== false,
    userVersion: options.userVersion,
    handles: () => (handles ??= new SessionHandles(signingSecrets, name)),
    schema,
  };
}

function attributesOf(name: string, options: SerializeOptions, path: string): string {
  try {
    const whole = serialize(name, 'x', options);
    return whole.slice(name.length + 2);
  } catch (error) {
    throw new SessionConfigError(`${path}cookie: ${(error as Error).message}`);
  }
}

function secrets(value: unknown, option: string): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? withoutUnsetOlder(value as unknown[]) : undefined;
  if (list === undefined || list.length === 0) {
    throw new SessionConfigError(`${option} must be a string or a non-empty list of strings; set it from the environment, e.g. secret: process.env.SESSION_SECRET`);
  }
  return list.map((entry, index) => {
    const where = list.length > 1 || Array.isArray(value) ? `${option}[${index}]` : option;
    if (typeof entry !== 'string') {
      throw new SessionConfigError(`${where} is ${describe(entry)}, not a string (is the environment variable set?)`);
    }
    if (entry.length < MIN_SECRET_LENGTH) {
      throw new SessionConfigError(`${where} must be at least ${MIN_SECRET_LENGTH} characters (it has ${entry.length}); use a random value such as the output of \`openssl rand -base64 48\``);
    }
    return entry;
  });
}

function duration(value: unknown, option: string, max = MAX_LIFETIME): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value > max) {
    throw new SessionConfigError(`${option} must be a number of milliseconds from 1 to ${max}${max === MAX_LIFETIME ? ' (400 days, the longest a browser keeps a cookie)' : ''}, got ${describe(value)}`);
  }
  return Math.floor(value);
}

function checkStore(store: unknown, option: string): asserts store is AnySessionStore {
  const s = store as Record<string, unknown> | null;
  const ok =
    s !== null &&
    typeof s === 'object' &&
    (s.clientSide === true
      ? typeof s.seal === 'function' && typeof s.open === 'function' && typeof s.sealedLength === 'function'
      : typeof s.get === 'function' && typeof s.set === 'function' && typeof s.touch === 'function' && typeof s.destroy === 'function');
  if (!ok) {
    throw new SessionConfigError(`${option} must implement SessionStore (get, set, patch, touch, destroy) or be a CookieStore`);
  }
  if (s.clientSide !== true && typeof s.patch !== 'function') {
    throw new SessionConfigError(
      `${option} has no patch(): a store must update a session with patch(), which does nothing for a destroyed id; writing updates with set() would bring back sessions ended by a logout or regenerate() (see SessionStore.patch)`,
    );
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (value === null || value === undefined) return String(value);
  return typeof value === 'object' ? 'an object' : `${value as string}`;
}
