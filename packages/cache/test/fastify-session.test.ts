import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisSessionStore, type SessionData, type SessionStoreOptions } from "../src/index.js";

declare module "fastify" {
  interface Session {
    user?: string;
    cart?: string[];
    visited?: boolean;
  }
}

const SECRET = "a-secret-of-at-least-thirty-two-characters!";
const prefix = testPrefix("sess");

let server: RedisServer;
let redis: RedisClient;
let admin: RedisClient;
beforeAll(async () => {
  // all/length/clear walk the prefix with SCAN: the documented optional ACL extra.
  server = await startRedis({ leastPrivilege: { extraRules: ["+scan"] } });
  redis = connect(server.url);
  admin = connect(server.adminUrl);
  await redis.ping();
});
afterAll(async () => {
  redis.disconnect();
  admin.disconnect();
  await server.stop();
});

let n = 0;
/** One app instance ("replica"); replicas built with the same `storePrefix` share their sessions. */
async function replica(
  storePrefix: string,
  options: { maxAge?: number; store?: Omit<SessionStoreOptions, "prefix"> } = {},
): Promise<{ app: FastifyInstance; gate: { open: () => void; reached: Promise<void> } }> {
  const app = Fastify();
  app.register(fastifyCookie);
  app.register(fastifySession, {
    secret: SECRET,
    saveUninitialized: false,
    cookie: { secure: false, maxAge: options.maxAge ?? 60_000 },
    store: new RedisSessionStore(redis, { prefix: storePrefix, ...options.store }),
  });
  let open = () => {};
  let reachedResolve = () => {};
  const gate = {
    open: () => open(),
    reached: new Promise<void>((r) => {
      reachedResolve = r;
    }),
  };
  app.get("/me", async (req) => ({ user: req.session.user ?? null, cart: req.session.cart ?? [] }));
  app.post("/visit", async (req) => {
    req.session.visited = true;
    return { ok: true };
  });
  app.post<{ Querystring: { name: string } }>("/login", async (req) => {
    await req.session.regenerate();
    req.session.user = req.query.name;
    return { ok: true };
  });
  app.post("/logout", async (req) => {
    await req.session.destroy();
    return { ok: true };
  });
  app.post<{ Params: { item: string } }>("/cart/:item", async (req) => {
    req.session.cart = [...(req.session.cart ?? []), req.params.item];
    return { cart: req.session.cart };
  });
  // Reads the session, then waits for the test: a slow read-only request.
  app.get("/slow", async (req) => {
    const user = req.session.user;
    await new Promise<void>((resolve) => {
      open = resolve;
      reachedResolve();
    });
    return { user };
  });
  await app.ready();
  n++;
  return { app, gate };
}

function sidOf(res: LightMyRequestResponse): string {
  const cookie = res.cookies.find((c) => c.name === "sessionId");
  if (cookie === undefined) throw new Error(`no session cookie in ${JSON.stringify(res.headers["set-cookie"])}`);
  return cookie.value;
}
const idOf = (sid: string) => decodeURIComponent(sid).split(".")[0] as string;
const call = (app: FastifyInstance, method: "GET" | "POST", url: string, sid?: string) =>
  app.inject({ method, url, ...(sid === undefined ? {} : { cookies: { sessionId: sid } }) });

describe("RedisSessionStore with @fastify/session across two replicas", () => {
  it("login on one replica, seen on the other; regenerate drops the old id; logout on the other ends it", async () => {
    const p = `${prefix}-${n}`;
    const { app: a } = await replica(p);
    const { app: b } = await replica(p);
    try {
      const visit = await call(a, "POST", "/visit");
      const before = sidOf(visit);
      expect(await admin.exists(`${p}:sess:{${idOf(before)}}`)).toBe(1);

      const login = await call(a, "POST", "/login?name=ada", before);
      const sid = sidOf(login);
      expect(idOf(sid)).not.toBe(idOf(before));
      expect((await call(b, "GET", "/me", sid)).json()).toMatchObject({ user: "ada" });
      const ttl = await admin.pttl(`${p}:sess:{${idOf(sid)}}`);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
      // The pre-login session is gone, and its id stays dead (tombstone).
      expect(await admin.exists(`${p}:sess:{${idOf(before)}}`)).toBe(0);
      expect((await call(b, "GET", "/me", before)).json()).toMatchObject({ user: null });
      await call(b, "POST", "/visit", before);
      expect(await admin.exists(`${p}:sess:{${idOf(before)}}`)).toBe(0);

      expect((await call(b, "POST", "/logout", sid)).statusCode).toBe(200);
      expect((await call(a, "GET", "/me", sid)).json()).toMatchObject({ user: null });
      expect(await admin.exists(`${p}:sess:{${idOf(sid)}}`)).toBe(0);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a slow read-only request on one replica does not undo an update made meanwhile on the other", async () => {
    const p = `${prefix}-${n}`;
    const { app: a, gate } = await replica(p);
    const { app: b } = await replica(p);
    try {
      const sid = sidOf(await call(a, "POST", "/login?name=ada"));
      await call(a, "POST", "/cart/apple", sid);
      const slow = call(a, "GET", "/slow", sid); // has read cart = [apple]
      await gate.reached;
      expect((await call(b, "POST", "/cart/pear", sid)).json()).toEqual({ cart: ["apple", "pear"] });
      gate.open(); // the slow request now saves its (unchanged) session: rolling sessions save on every request
      expect((await slow).statusCode).toBe(200);
      expect((await call(a, "GET", "/me", sid)).json()).toEqual({ user: "ada", cart: ["apple", "pear"] });
      expect((await call(b, "GET", "/me", sid)).json()).toEqual({ user: "ada", cart: ["apple", "pear"] });
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("concurrent updates from both replicas leave one complete session (the last write), readable by both", async () => {
    const p = `${prefix}-${n}`;
    const { app: a } = await replica(p);
    const { app: b } = await replica(p);
    try {
      const sid = sidOf(await call(a, "POST", "/login?name=ada"));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => call(i % 2 === 0 ? a : b, "POST", `/cart/item-${i}`, sid)),
      );
      for (const r of results) expect(r.statusCode).toBe(200);
      const seenA = (await call(a, "GET", "/me", sid)).json();
      const seenB = (await call(b, "GET", "/me", sid)).json();
      expect(seenA).toEqual(seenB);
      expect(seenA.user).toBe("ada");
      // Each request appended to the cart it read: the stored cart is one of the carts a request wrote.
      const written = results.map((r) => JSON.stringify(r.json().cart));
      expect(written).toContain(JSON.stringify(seenA.cart));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("expiry: a session ends with its cookie's maxAge; rolling requests keep it alive past its first expiry", async () => {
    const p = `${prefix}-${n}`;
    const { app: a } = await replica(p, { maxAge: 1_500 });
    const { app: b } = await replica(p, { maxAge: 1_500 });
    try {
      const sid = sidOf(await call(a, "POST", "/login?name=ada"));
      const key = `${p}:sess:{${idOf(sid)}}`;
      // Requests every 300 ms for 3 s (twice the lifetime), alternating replicas: each renews it.
      const started = Date.now();
      while (Date.now() - started < 3_000) {
        expect((await call(Date.now() % 2 ? a : b, "GET", "/me", sid)).json()).toMatchObject({ user: "ada" });
        await new Promise((r) => setTimeout(r, 300));
      }
      // Then idle: it expires.
      await waitUntil("the session to expire", async () => (await admin.exists(key)) === 0, 5_000);
      expect((await call(b, "GET", "/me", sid)).json()).toMatchObject({ user: null });
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe("connect-redis parity", () => {
  it("custom serializer: stored in its format, read back through it", async () => {
    const p = `${prefix}-${n}`;
    const serializer = {
      stringify: (s: object) => `b64:${Buffer.from(JSON.stringify(s)).toString("base64")}`,
      parse: (t: string) => JSON.parse(Buffer.from(t.slice(4), "base64").toString()) as unknown,
    };
    const { app } = await replica(p, { store: { serializer } });
    try {
      const sid = sidOf(await call(app, "POST", "/login?name=ada"));
      const raw = (await admin.get(`${p}:sess:{${idOf(sid)}}`)) as string;
      expect(raw.startsWith("b64:")).toBe(true);
      expect(JSON.parse(Buffer.from(raw.slice(4), "base64").toString())).toMatchObject({ user: "ada" });
      expect((await call(app, "GET", "/me", sid)).json()).toMatchObject({ user: "ada" });
    } finally {
      await app.close();
    }
  });

  it("ttlMs as a function of the session decides the lifetime", async () => {
    const p = `${prefix}-${n}`;
    const ttlMs = (s: SessionData) => (s.user === "admin" ? 5_000 : 120_000);
    const { app } = await replica(p, { store: { ttlMs } });
    try {
      const admins = sidOf(await call(app, "POST", "/login?name=admin"));
      const users = sidOf(await call(app, "POST", "/login?name=ada"));
      const adminTtl = await admin.pttl(`${p}:sess:{${idOf(admins)}}`);
      const userTtl = await admin.pttl(`${p}:sess:{${idOf(users)}}`);
      expect(adminTtl).toBeGreaterThan(3_000);
      expect(adminTtl).toBeLessThanOrEqual(5_000);
      expect(userTtl).toBeGreaterThan(100_000);
    } finally {
      await app.close();
    }
  });

  it("disableTouch: requests that change nothing do not renew the expiry", async () => {
    const p = `${prefix}-${n}`;
    const { app } = await replica(p, { store: { disableTouch: true } });
    const { app: rolling } = await replica(`${p}-r`);
    try {
      for (const [instance, renews] of [
        [app, false],
        [rolling, true],
      ] as const) {
        const sid = sidOf(await call(instance, "POST", "/login?name=ada"));
        const key = `${instance === app ? p : `${p}-r`}:sess:{${idOf(sid)}}`;
        await admin.pexpire(key, 30_000); // as if the session were older
        await call(instance, "GET", "/me", sid);
        const ttl = await admin.pttl(key);
        if (renews) expect(ttl).toBeGreaterThan(50_000);
        else expect(ttl).toBeLessThanOrEqual(30_000);
      }
    } finally {
      await app.close();
      await rolling.close();
    }
  });

  it("all, length and clear cover this prefix's sessions only", async () => {
    const p = `${prefix}-${n}`;
    const { app } = await replica(p);
    const { app: other } = await replica(`${p}-other`);
    const store = new RedisSessionStore(redis, { prefix: p });
    const cb = <T>(fn: (done: (err: unknown, v?: T) => void) => void) =>
      new Promise<T | undefined>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
    try {
      const names = Array.from({ length: 7 }, (_, i) => `user-${i}`);
      const sids = [];
      for (const name of names) sids.push(sidOf(await call(app, "POST", `/login?name=${name}`)));
      await call(app, "POST", "/logout", sids[0]); // leaves a tombstone, not a session
      const otherSid = sidOf(await call(other, "POST", "/login?name=elsewhere"));

      expect(await cb<number>((d) => store.length(d))).toBe(6);
      const all = (await cb<Array<{ id: string; user?: unknown }>>((d) => store.all(d))) ?? [];
      expect(all.map((s) => s.user).sort()).toEqual(names.slice(1).sort());
      expect(all.map((s) => s.id).sort()).toEqual(sids.slice(1).map(idOf).sort());

      await cb((d) => store.clear(d));
      expect(await cb<number>((d) => store.length(d))).toBe(0);
      expect((await call(app, "GET", "/me", sids[1])).json()).toMatchObject({ user: null });
      expect((await call(other, "GET", "/me", otherSid)).json()).toMatchObject({ user: "elsewhere" });
    } finally {
      await app.close();
      await other.close();
    }
  });
});
