// Server-rendered HTML from template strings. Every value that comes from a visitor or a session
// goes through `escape`, so it can never become markup.
import type { FlashMessages, UserSessionInfo } from 'nest-sessions';
import type { SignedInUser, Theme } from './session-types.js';

type Messages = { [K in keyof FlashMessages]?: FlashMessages[K][] };

export interface PageOptions {
  title: string;
  theme: Theme;
  user: SignedInUser | undefined;
  messages: Messages;
  body: string;
  /** The CSRF token every form of the page carries (`@CsrfToken()`); undefined: a page without forms. */
  csrf: string | undefined;
  /** What made the page: the few lines of the library's API behind what the visitor sees (see `how`). */
  how?: string;
}

/** Where the guides are read. */
const GUIDES = 'https://github.com/nest-sessions/nest-sessions/blob/main/docs';

/**
 * A small aside that shows the lines of the library that made what the visitor sees, with the guide
 * that explains them.
 */
export function how(code: string, guide: string, guideTitle: string): string {
  return `<aside class="how"><p>How this page is made</p><pre><code>${escape(code)}</code></pre><a href="${GUIDES}/${guide}">${escape(guideTitle)}</a></aside>`;
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escape(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => ENTITIES[char]);
}

/** The hidden field `CsrfGuard` reads the token from. */
export function csrfField(token: string): string {
  return `<input type="hidden" name="_csrf" value="${escape(token)}">`;
}

export function page({ title, theme, user, messages, body, csrf, how: made = '' }: PageOptions): string {
  const flashes = (['info', 'error'] as const)
    .flatMap((kind) => (messages[kind] ?? []).map((text) => `<p class="flash ${kind}" role="status">${escape(text)}</p>`))
    .join('\n');
  const other: Theme = theme === 'dark' ? 'light' : 'dark';
  return `<!doctype html>
<html lang="en" data-theme="${escape(theme)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)} · nest-sessions sample</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <a class="brand" href="/">nest-sessions</a>
  <nav>
    <a href="/">Home</a>
    <a href="/account">Account</a>
    ${csrf === undefined ? '' : `<form method="post" action="/prefs/theme">${csrfField(csrf)}<button name="theme" value="${other}">${other === 'dark' ? 'Dark' : 'Light'} theme</button></form>`}
    ${user === undefined || csrf === undefined ? '' : `<form method="post" action="/logout">${csrfField(csrf)}<button>Sign out</button></form>`}
  </nav>
</header>
<main>
${flashes}
<h1>${escape(title)}</h1>
${body}
${made}
</main>
${LOCAL_TIMES}
</body>
</html>
`;
}

export function homeBody(user: SignedInUser | undefined, visits: number, csrf: string): string {
  const counter = `<p class="counter">You have loaded this page <strong>${visits}</strong> ${visits === 1 ? 'time' : 'times'} in this session.</p>`;
  if (user !== undefined) {
    return `${counter}
<p>Signed in as <strong>${escape(user.name)}</strong>. See <a href="/account">your account</a>.</p>
${LIVE_BADGE}`;
  }
  return `${counter}
<form class="card" method="post" action="/login">
  ${csrfField(csrf)}
  <h2>Sign in</h2>
  <label>Username <input name="username" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <label class="check"><input type="checkbox" name="remember" value="1"> Remember me for 30 days</label>
  <button type="submit">Sign in</button>
  <p class="hint">Demo account: username <code>demo</code>, password <code>demo</code>.</p>
</form>`;
}

export function accountBody(user: SignedInUser, expiresAt: Date, devices: UserSessionInfo[] | undefined, csrf: string): string {
  return `<dl class="card">
  <dt>Username</dt><dd>${escape(user.name)}</dd>
  <dt>Signed in</dt><dd>${time(new Date(user.since))}</dd>
  <dt>Remember me</dt><dd>${user.remembered ? 'yes: the session cookie lasts 30 days' : 'no: the session cookie ends with the browser'}</dd>
  <dt>Session expires</dt><dd>${time(expiresAt)} unless you come back before</dd>
</dl>
${devicesBody(devices, csrf)}`;
}

/** The signed-in devices, each with a sign-out button, and "sign out everywhere else". */
function devicesBody(devices: UserSessionInfo[] | undefined, csrf: string): string {
  if (devices === undefined) {
    return `<section class="card devices"><h2>Signed-in devices</h2>
<p class="hint">This store keeps sessions in the browser's cookie, so the server cannot list or sign out other devices. Run the sample with a server-side store (e.g. <code>SESSION_STORE=memory</code>) to see them.</p></section>`;
  }
  const rows = devices
    .map(
      (device) => `<li class="device${device.current ? ' current' : ''}">
  <div><strong>${escape(browserOf(device.userAgent))}</strong>${device.current ? ' <span class="tag">this device</span>' : ''}
  <span class="hint">${escape(device.ip ?? 'address unknown')} · signed in ${time(device.createdAt)} · last seen ${time(device.lastSeenAt)}</span></div>
  ${device.current ? '' : `<form method="post" action="/account/sign-out-device">${csrfField(csrf)}<input type="hidden" name="handle" value="${escape(device.handle)}"><button>Sign out</button></form>`}
</li>`,
    )
    .join('\n');
  const others = devices.some((device) => !device.current);
  return `<section class="card devices"><h2>Signed-in devices</h2>
<ul>
${rows}
</ul>
${others ? `<form method="post" action="/account/sign-out-others">${csrfField(csrf)}<button>Sign out everywhere else</button></form>` : '<p class="hint">Only this device is signed in.</p>'}
</section>`;
}

/** A date in UTC, shown in the visitor's own locale and time zone once the page has loaded (`LOCAL_TIMES`). */
function time(date: Date): string {
  return `<time datetime="${escape(date.toISOString())}">${escape(date.toUTCString())}</time>`;
}

/** Rewrites every `<time>` of the page in the visitor's locale. */
const LOCAL_TIMES = `<script>
  for (const el of document.querySelectorAll('time[datetime]')) {
    el.textContent = new Date(el.dateTime).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  }
</script>`;

/** A short name for a user agent: the browser and the system, when recognisable. */
function browserOf(userAgent: string | undefined): string {
  if (userAgent === undefined) return 'Unknown browser';
  const browser = /Edg\//.test(userAgent) ? 'Edge' : /Firefox\//.test(userAgent) ? 'Firefox' : /Chrome\//.test(userAgent) ? 'Chrome' : /Safari\//.test(userAgent) ? 'Safari' : 'Browser';
  const system = /Android/.test(userAgent) ? 'Android' : /iPhone|iPad/.test(userAgent) ? 'iOS' : /Windows/.test(userAgent) ? 'Windows' : /Mac OS X/.test(userAgent) ? 'macOS' : /Linux/.test(userAgent) ? 'Linux' : undefined;
  return system === undefined ? browser : `${browser} on ${system}`;
}

/**
 * A badge kept live over socket.io (see presence.gateway.ts): it names the user the socket's session
 * belongs to, and says so the moment the server ends the socket (socket.io's reason
 * `io server disconnect`: the session ended, e.g. signed out in another tab). Any other drop (the
 * network, a server restart) is not the end of the session: socket.io reconnects by itself, and the
 * badge says it is reconnecting until the server greets it again. A session store that is down
 * is no end of the session either: the server says so (`unavailable`), and the badge tells it apart.
 */
const LIVE_BADGE = `<p id="live" class="live" data-state="connecting" role="status">Live: connecting…</p>
<script src="/socket.io/socket.io.js"></script>
<script>
  const badge = document.getElementById('live');
  const socket = io({ transports: ['websocket'] });
  socket.on('presence', (presence) => {
    if (presence.unavailable) {
      badge.dataset.state = 'unavailable';
      badge.textContent = 'Live: unavailable, reload to try again';
      return;
    }
    badge.dataset.state = presence.signedIn ? 'on' : 'off';
    badge.textContent = presence.signedIn ? 'Live: signed in as ' + presence.name : 'Live: not signed in';
  });
  socket.on('disconnect', (reason) => {
    if (reason === 'io server disconnect') {
      badge.dataset.state = 'ended';
      badge.textContent = 'Live: session ended';
    } else if (socket.active) {
      badge.dataset.state = 'reconnecting';
      badge.textContent = 'Live: reconnecting…';
    } else {
      badge.dataset.state = 'disconnected';
      badge.textContent = 'Live: disconnected';
    }
  });
</script>`;

const STYLE = `
:root { --bg: #f7f7f5; --fg: #1d1d1f; --muted: #6b6b70; --card: #fff; --line: #ddd; --accent: #2f5fd0; }
[data-theme="dark"] { --bg: #16171b; --fg: #ececef; --muted: #9a9aa3; --card: #22242a; --line: #3a3c44; --accent: #8fb0ff; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header { display: flex; align-items: center; justify-content: space-between; padding: .75rem 1.5rem; border-bottom: 1px solid var(--line); }
.brand { font-weight: 700; color: var(--fg); text-decoration: none; }
nav { display: flex; gap: 1rem; align-items: center; }
nav form { margin: 0; }
a { color: var(--accent); }
main { max-width: 36rem; margin: 2rem auto; padding: 0 1.5rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1.25rem 1.5rem; }
.card h2 { margin-top: 0; }
label { display: block; margin: .75rem 0; }
label input:not([type="checkbox"]) { display: block; width: 100%; margin-top: .25rem; padding: .5rem; font: inherit; border: 1px solid var(--line); border-radius: 4px; background: var(--bg); color: var(--fg); }
button { font: inherit; padding: .4rem .9rem; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: var(--bg); cursor: pointer; }
nav button { background: transparent; color: var(--accent); }
.hint { color: var(--muted); font-size: .9rem; margin-bottom: 0; }
.flash { padding: .6rem 1rem; border-radius: 6px; border: 1px solid; }
.flash.info { border-color: #3a9a5b; background: color-mix(in srgb, #3a9a5b 15%, var(--bg)); }
.flash.error { border-color: #c94a4a; background: color-mix(in srgb, #c94a4a 15%, var(--bg)); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .5rem 1.5rem; }
dt { color: var(--muted); }
dd { margin: 0; }
.live { display: inline-block; padding: .2rem .7rem; border-radius: 999px; border: 1px solid var(--line); color: var(--muted); font-size: .9rem; }
.live[data-state="on"] { border-color: #3a9a5b; color: var(--fg); }
.live[data-state="ended"] { border-color: #c94a4a; }
.devices { margin-top: 1.5rem; }
.devices ul { list-style: none; padding: 0; margin: 0 0 1rem; }
.device { display: flex; justify-content: space-between; align-items: center; gap: 1rem; padding: .6rem 0; border-bottom: 1px solid var(--line); }
.device .hint { display: block; }
.device form { margin: 0; }
.how { margin-top: 2rem; padding: .75rem 1rem; border-left: 3px solid var(--accent); background: var(--card); font-size: .85rem; }
.how p { margin: 0 0 .4rem; color: var(--muted); font-weight: 600; }
.how pre { margin: 0 0 .5rem; overflow-x: auto; }
.how code { font: .8rem/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; }
.tag { font-size: .8rem; padding: .1rem .4rem; border: 1px solid var(--accent); border-radius: 4px; color: var(--accent); }
`;
