import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Cookie, type Locator, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

// Drives the built sample app (sample-dist/, from `npm run test:browser`) in the system's Chromium.
// Every test is a new visitor: its own browser context (no cookies), signing in itself when it
// needs to, so any test runs alone (`-t`) or in any order.

const CHROMIUM = '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const DAY_S = 24 * 60 * 60;
const ROOT = new URL('../../', import.meta.url);
const MAIN = new URL('sample-dist/main.js', ROOT);

let server: ChildProcess | undefined;
let serverOutput = '';
let browser: Browser | undefined;
/** The visitor of the running test. */
let context: BrowserContext;
let page: Page;
let base: string;
const tempDirs: string[] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function waitUntilAnswering(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the sample exited with code ${child.exitCode}:\n${serverOutput}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the sample did not answer on ${url} within 20 s:\n${serverOutput}`);
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

/** Clicks something that submits a form or follows a link, and waits for the next page to load. */
async function follow(target: Locator): Promise<void> {
  await Promise.all([page.waitForEvent('load'), target.click()]);
}

async function reload(): Promise<void> {
  await page.reload();
}

async function flashes(): Promise<string[]> {
  return page.locator('.flash').allInnerTexts();
}

async function cookie(name: string): Promise<Cookie | undefined> {
  return (await context!.cookies(base)).find((c) => c.name === name);
}

/** Screenshots for a human to look at: kept in SAMPLE_SCREENSHOT_DIR when set, else thrown away. */
async function screenshot(name: string): Promise<void> {
  let dir = process.env.SAMPLE_SCREENSHOT_DIR;
  if (dir === undefined) {
    dir = await mkdtemp(join(tmpdir(), 'nest-sessions-screens-'));
    tempDirs.push(dir);
  }
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

async function signIn(username: string, password: string, remember: boolean): Promise<void> {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByLabel('Remember me').setChecked(remember);
  await follow(page.getByRole('button', { name: 'Sign in' }));
}

/** From the home page, signs in as the demo user and checks that it worked. */
async function signInAsDemo(remember: boolean): Promise<void> {
  await page.goto(`${base}/`);
  await signIn('demo', 'demo', remember);
  expect(await page.locator('h1').innerText()).toBe('Hello, demo');
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error('sample-dist/main.js is missing: run `npm run test:browser`, which builds it');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium`);

  const port = await freePort();
  base = `http://localhost:${port}`;
  // SAMPLE_SESSION_STORE runs the same round trip on another store (file, cookie, redis, postgres).
  const sessionDir = await mkdtemp(join(tmpdir(), 'nest-sessions-files-'));
  tempDirs.push(sessionDir);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    SESSION_STORE: process.env.SAMPLE_SESSION_STORE ?? 'memory',
    SESSION_DIR: sessionDir,
    NODE_ENV: 'development', // as `npm start` runs it
  };
  delete env.SESSION_SECRET; // the zero-config run: a random secret for the process
  server = spawn(process.execPath, [fileURLToPath(MAIN)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
  server.stderr!.on('data', (chunk: Buffer) => (serverOutput += chunk.toString()));
  await waitUntilAnswering(`${base}/`, server);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});

beforeEach(async () => {
  context = await browser!.newContext();
  page = await context.newPage();
});

afterEach(async () => {
  await context?.close();
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  if (server !== undefined) await stopServer(server);
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('the sample app in Chromium', () => {
  it('counts visits in a browser-session cookie', async () => {
    await page.goto(`${base}/`);
    expect(await page.locator('.counter').innerText()).toContain('loaded this page 1 time');
    await reload();
    expect(await page.locator('.counter').innerText()).toContain('loaded this page 2 times');
    await reload();
    expect(await page.locator('.counter').innerText()).toContain('loaded this page 3 times');

    const sid = await cookie('sid');
    expect(sid).toBeDefined();
    expect(sid!.expires).toBe(-1); // no "remember me" yet: gone with the browser
    expect(sid!.httpOnly).toBe(true);
    expect(sid!.secure).toBe(false); // development over plain HTTP: Secure only over HTTPS or in production
    expect(sid!.sameSite).toBe('Lax');
  });

  it('turns a visitor away from the account page with a message', async () => {
    await page.goto(`${base}/account`);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await flashes()).toEqual(['Please sign in to see your account.']);
    expect(await page.getByRole('button', { name: 'Sign in' }).count()).toBe(1);
  });

  it('rejects a wrong password with an error shown once', async () => {
    await page.goto(`${base}/`);
    await signIn('demo', 'not-the-password', false);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await flashes()).toEqual(['Wrong username or password.']);
    expect(await page.locator('h1').innerText()).toBe('Welcome');
    await reload();
    expect(await flashes()).toEqual([]);
  });

  it('signs in with remember me: a new persistent cookie and a welcome shown once', async () => {
    await page.goto(`${base}/`);
    await reload();
    const before = await cookie('sid');
    expect(before).toBeDefined();
    const visitsBefore = await page.locator('.counter strong').innerText();
    await signIn('demo', 'demo', true);

    expect(new URL(page.url()).pathname).toBe('/');
    expect(await flashes()).toEqual(['Welcome back, demo']);
    expect(await page.locator('h1').innerText()).toBe('Hello, demo');
    expect(await page.locator('main').innerText()).toContain('Signed in as demo');
    // regenerate() kept the data: the counter goes on
    expect(Number(await page.locator('.counter strong').innerText())).toBe(Number(visitsBefore) + 1);

    const sid = await cookie('sid');
    expect(sid).toBeDefined();
    expect(sid!.value).not.toBe(before!.value); // a new id on sign-in
    expect(sid!.expires).toBeGreaterThan(Date.now() / 1000 + 29 * DAY_S);
    expect(sid!.httpOnly).toBe(true);
    expect(sid!.secure).toBe(false); // development over plain HTTP: Secure only over HTTPS or in production
    expect(sid!.sameSite).toBe('Lax');

    await screenshot('signed-in');

    await reload();
    expect(await flashes()).toEqual([]);
    expect(await page.locator('h1').innerText()).toBe('Hello, demo');
  });

  it('shows the account page to the signed-in user', async () => {
    await signInAsDemo(true);
    await follow(page.getByRole('link', { name: 'Account', exact: true }));
    expect(new URL(page.url()).pathname).toBe('/account');
    expect(await page.locator('h1').innerText()).toBe('Your account');
    const details = await page.locator('dl').innerText();
    expect(details).toContain('demo');
    expect(details).toContain('yes: the session cookie lasts 30 days');
  });

  it('keeps the theme in its own year-long prefs session', async () => {
    await page.goto(`${base}/`);
    expect(await cookie('prefs')).toBeUndefined(); // a new visitor: no theme chosen yet
    expect(await page.locator('html').getAttribute('data-theme')).toBe('light');
    await follow(page.getByRole('button', { name: 'Dark theme' }));
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
    await reload();
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
    expect(await page.getByRole('button', { name: 'Light theme' }).count()).toBe(1);

    const prefs = await cookie('prefs');
    expect(prefs).toBeDefined();
    expect(prefs!.expires).toBeGreaterThan(Date.now() / 1000 + 364 * DAY_S);
    expect(prefs!.httpOnly).toBe(true);
  });

  it('keeps a live "signed in as" badge over socket.io that ends the moment the session is signed out in another tab', async () => {
    await signInAsDemo(false);
    const badge = page.locator('#live');
    await expect.poll(() => badge.getAttribute('data-state')).toBe('on');
    expect(await badge.innerText()).toBe('Live: signed in as demo');

    // A second tab of the same browser (same cookies) signs out; the first one is not reloaded.
    const other = await context.newPage();
    await other.goto(`${base}/`);
    expect(await other.locator('#live').count()).toBe(1);
    await Promise.all([other.waitForEvent('load'), other.getByRole('button', { name: 'Sign out' }).click()]);
    expect(await other.locator('h1').innerText()).toBe('Welcome');
    expect(await other.locator('#live').count()).toBe(0); // no badge for a visitor

    await expect.poll(() => badge.getAttribute('data-state')).toBe('ended');
    expect(await badge.innerText()).toBe('Live: session ended');
    await screenshot('live-badge-ended');
  });

  it('signs out: the session ends, "Signed out" shows once, the theme stays', async () => {
    await signInAsDemo(true);
    await follow(page.getByRole('button', { name: 'Dark theme' }));
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
    expect((await cookie('sid'))!.expires).toBeGreaterThan(Date.now() / 1000 + 29 * DAY_S);
    await follow(page.getByRole('button', { name: 'Sign out' }));
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await flashes()).toEqual(['Signed out']);
    expect(await page.locator('h1').innerText()).toBe('Welcome');
    expect(await page.getByRole('button', { name: 'Sign in' }).count()).toBe(1);
    expect(await page.locator('.counter').innerText()).toContain('loaded this page 1 time'); // a fresh session
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
    expect((await cookie('sid'))?.expires).toBe(-1); // remember me went with the old session

    await screenshot('signed-out-dark');
    await reload();
    expect(await flashes()).toEqual([]);
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');

    await page.goto(`${base}/account`);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await flashes()).toEqual(['Please sign in to see your account.']);
  });

  it('refuses a form another origin posts to it, though the browser sends the session cookie along', async () => {
    await signInAsDemo(false);
    expect(await page.locator('html').getAttribute('data-theme')).toBe('light');
    const hiddenToken = await page.locator('form[action="/logout"] input[name="_csrf"]').getAttribute('value');
    expect(hiddenToken).toMatch(/^[A-Za-z0-9_-]{86}$/); // the sample's own forms carry a token

    // An attacker's page on another port of localhost: another origin, but the same site, so the
    // SameSite=Lax session cookie goes with its POST. It guesses a token of the right shape.
    const forged = 'A'.repeat(86);
    const attacker = await serve(`<!doctype html><form method="post" action="${base}/prefs/theme">
<input type="hidden" name="theme" value="dark"><input type="hidden" name="_csrf" value="${forged}"></form>
<script>document.forms[0].submit()</script>`);
    try {
      const posted = page.waitForResponse((response) => response.url() === `${base}/prefs/theme`);
      await page.goto(attacker.url);
      const response = await posted;
      expect(response.request().method()).toBe('POST');
      expect((await response.request().allHeaders()).cookie).toMatch(/(^|; )sid=/); // the cookie went along
      expect(response.status()).toBe(403);
      await page.waitForLoadState();
      expect(new URL(page.url()).origin).toBe(base);
      expect(await page.locator('h1').innerText()).toBe('Form refused');
    } finally {
      await attacker.close();
    }

    await page.goto(`${base}/`);
    expect(await page.locator('h1').innerText()).toBe('Hello, demo'); // still signed in
    expect(await page.locator('html').getAttribute('data-theme')).toBe('light'); // nothing changed
    await follow(page.getByRole('button', { name: 'Dark theme' })); // the page's own form works
    expect(await page.locator('html').getAttribute('data-theme')).toBe('dark');
  });

  it('lists the signed-in devices on the account page and signs out everywhere else', async () => {
    // A second browser (its own cookies) signs in as the same user.
    const other = await browser!.newContext({ userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 19_0 like Mac OS X) Version/19.0 Mobile/15E148 Safari/604.1' });
    try {
      const phone = await other.newPage();
      await phone.goto(`${base}/`);
      await phone.getByLabel('Username').fill('demo');
      await phone.getByLabel('Password').fill('demo');
      await Promise.all([phone.waitForEvent('load'), phone.getByRole('button', { name: 'Sign in' }).click()]);
      expect(await phone.locator('h1').innerText()).toBe('Hello, demo');

      await signInAsDemo(false);
      await page.goto(`${base}/account`);
      const devices = page.locator('.device');
      expect(await devices.count()).toBeGreaterThanOrEqual(2);
      expect(await page.locator('.device.current').count()).toBe(1);
      expect(await page.locator('.device.current').innerText()).toContain('this device');
      expect(await page.locator('.devices').innerText()).toContain('Safari on iOS');
      await screenshot('account-devices');

      await follow(page.getByRole('button', { name: 'Sign out everywhere else' }));
      expect(new URL(page.url()).pathname).toBe('/account');
      expect((await flashes())[0]).toMatch(/^Signed out \d+ other devices?\.$/);
      expect(await devices.count()).toBe(1);
      expect(await page.locator('.devices').innerText()).toContain('Only this device is signed in.');

      // The phone is signed out on its next request; this browser is not.
      await phone.goto(`${base}/account`);
      expect(new URL(phone.url()).pathname).toBe('/');
      expect(await phone.locator('.flash').allInnerTexts()).toEqual(['Please sign in to see your account.']);
      await reload();
      expect(await page.locator('h1').innerText()).toBe('Your account');
    } finally {
      await other.close();
    }
  });
});

/** A page served on another port of localhost. */
async function serve(html: string): Promise<{ url: string; close: () => Promise<void> }> {
  const other: Server = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  const address = other.address();
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return {
    url: `http://localhost:${address.port}/`,
    close: () => new Promise<void>((resolve) => other.close(() => resolve())),
  };
}
