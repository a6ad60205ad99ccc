import express from 'express';
import session, { type Store } from 'express-session';
import request from 'supertest';

declare module 'express-session' {
  interface SessionData {
    userId: number;
    profile: { name: string; roles: string[] };
    cart: number[];
    visits: number;
  }
}

/** A session cookie an express-session app set: its name=value pair, and the old session's id. */
export interface OldSessionCookie {
  /** `connect.sid=s%3A<id>.<signature>`, as the browser sends it back. */
  pair: string;
  /** The id inside it. */
  id: string;
}

/**
 * A real express-session app (the app a user moves from), with its `store` (connect-redis,
 * connect-pg-simple), signing with the first of `secrets`. `/login` stores data, `/whoami` reads it.
 */
export function expressSessionApp(store: Store, secrets: string[], name = 'connect.sid') {
  const app = express();
  app.use(session({ secret: secrets, name, store, resave: false, saveUninitialized: false }));
  app.get('/login', (req, res) => {
    req.session.userId = 42;
    req.session.profile = { name: 'Ada', roles: ['admin'] };
    req.session.cart = [1, 2, 3];
    if (typeof req.query.maxAge === 'string') req.session.cookie.maxAge = Number(req.query.maxAge);
    res.json({ ok: true });
  });
  app.get('/visit', (req, res) => {
    req.session.visits = (req.session.visits ?? 0) + 1;
    res.json({ visits: req.session.visits });
  });
  app.get('/whoami', (req, res) => {
    res.json({ userId: req.session.userId ?? null });
  });
  return {
    app,
    /** Signs in on the old app: a new old session with data, and its cookie. */
    async login(maxAge?: number): Promise<OldSessionCookie> {
      const res = await request(app).get(maxAge === undefined ? '/login' : `/login?maxAge=${maxAge}`);
      if (res.status !== 200) throw new Error(`the express-session app answered ${res.status}`);
      const header = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((each) => each.startsWith(`${name}=`));
      if (header === undefined) throw new Error('the express-session app set no cookie');
      const pair = header.split(';')[0];
      const value = decodeURIComponent(pair.slice(name.length + 1));
      return { pair, id: value.slice(2, value.lastIndexOf('.')) };
    },
    /** A request to the old app that changes the session (an instance of it still running). */
    async visit(cookie: string): Promise<void> {
      const res = await request(app).get('/visit').set('Cookie', cookie);
      if (res.status !== 200) throw new Error(`the express-session app answered ${res.status}`);
    },
    /** What the old app sees with `cookie`. */
    async whoami(cookie: string): Promise<number | null> {
      const res = await request(app).get('/whoami').set('Cookie', cookie);
      return (res.body as { userId: number | null }).userId;
    },
  };
}
