/**
 * packages/cache README, "Migrating from bentocache and connect-redis" (the connect-redis rows) and "Sessions": each
 * row's claim about connect-redis run against connect-redis itself (the installed devDependency, on a node-redis
 * client), side by side with RedisSessionStore (ioredis) on one real Redis, on the same calls; where the two differ
 * on purpose (tombstones, no rewrite of unchanged data, callback style only), the difference is asserted. Then one
 * @fastify/session application on each store, and express-session's touch-or-set choice on connect-redis.
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { RedisSessionStore, type SessionData, type SessionStoreOptions } from "@coordis/cache";
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import { RedisStore } from "connect-redis";
import Fastify, { type FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

declare module "fastify" {
  interface Session {
    user?: string;
    cart?: string[];
  }
}

let server: RedisServer;
let redis: RedisClient;
let admin: RedisClient;
let nodeRedis: ReturnType<typeof createClient>;
let crUrl: string;
const CR_USER = "connect-redis";
const CR_PASSWORD = "connect-redis-test-password";
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  // Coordis' store: the least-privilege user (+scan, the documented extra of all/length/clear).
  server = await startRedis({ leastPrivilege: { extraRules: ["+scan"] } });
  redis = connect(server.url);
  admin = connect(server.adminUrl);
  // connect-redis: its own user with the commands it sends, on the suite's keys and its default `sess:` prefix.
  const rules = "on resetkeys ~coordis:* ~sess:* -@all +hello +ping +get +set +expire +del +mget +scan".split(" ");
  await admin.call("ACL", "SETUSER", CR_USER, `>${CR_PASSWORD}`, ...rules);
  crUrl = `redis://${CR_USER}:${CR_PASSWORD}@${server.host}:${server.port}`;
  nodeRedis = createClient({ url: crUrl });
  await nodeRedis.connect();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  nodeRedis?.destroy();
  redis?.disconnect();
  admin?.disconnect();
  await server?.stop();
});

type CrOptions = Omit<ConstructorParameters<typeof RedisStore>[0], "client">;
type Session = SessionData & { user?: string; cart?: string[] };

/** One application's stores, as the README maps them: connect-redis "<app>:sess:" and Coordis "<app>". */
function stores(crOptions: CrOptions = {}, coOptions: SessionStoreOptions = {}) {
  const crPrefix = `${testPrefix("mig-cr")}:sess:`;
  const coPrefix = testPrefix("mig-co");
  const cr = new RedisStore({ client: nodeRedis, prefix: crPrefix, ...crOptions });
  const co = new RedisSessionStore(redis, { prefix: coPrefix, ...coOptions });
  const cb =
    <T>(resolve: (v: T) => void, reject: (e: unknown) => void) =>
    (err: unknown, v?: T) =>
      err ? reject(err) : resolve(v as T);
  const coApi = {
    get: (id: string) => new Promise<Session | null | undefined>((res, rej) => co.get(id, cb(res, rej))),
    set: (id: string, s: Session) => new Promise<void>((res, rej) => co.set(id, s, cb(res, rej))),
    touch: (id: string, s: Session) => new Promise<void>((res, rej) => co.touch(id, s, cb(res, rej))),
    destroy: (id: string) => new Promise<void>((res, rej) => co.destroy(id, cb(res, rej))),
    all: () => new Promise<Array<Session & { id: string }> | undefined>((res, rej) => co.all(cb(res, rej))),
    length: () => new Promise<number | undefined>((res, rej) => co.length(cb(res, rej))),
    clear: () => new Promise<void>((res, rej) => co.clear(cb(res, rej))),
  };
  return {
    cr,
    co,
    /** Coordis' callbacks as promises (connect-redis' methods return promises themselves). */
    coApi,
    /** The same call on both stores. */
    setBoth: async (id: string, s: Session) => {
      await cr.set(id, s);
      await coApi.set(id, s);
    },
    touchBoth: async (id: string, s: Session) => {
      await cr.touch(id, s);
      await coApi.touch(id, s);
    },
    crKey: (id: string) => `${crPrefix}${id}`,
    coKey: (id: string) => `${coPrefix}:sess:{${id}}`,
  };
}

const cookie = (ms: number) => ({ originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString() });
/** A key's remaining lifetime in ms (-2: no key, -1: no expiry). */
const pttl = (key: string) => admin.pttl(key);

describe("connect-redis → RedisSessionStore: the README's rows against connect-redis itself", () => {
  it("prefix: connect-redis keys are <prefix><id>, default 'sess:'; Coordis' <prefix>:sess:{<id>}, so 'myapp' maps 'myapp:sess:'", async () => {
    const id = testPrefix("id").replace(/[^a-z0-9-]/g, "");
    const byDefault = new RedisStore({ client: nodeRedis });
    expect(byDefault.prefix).toBe("sess:");
    await byDefault.set(id, { cookie: cookie(60_000) });
    expect(await admin.exists(`sess:${id}`)).toBe(1);
    await byDefault.destroy(id);
    expect(await admin.exists(`sess:${id}`)).toBe(0);

    const app = testPrefix("myapp");
    const cr = new RedisStore({ client: nodeRedis, prefix: `${app}:sess:` });
    const co = new RedisSessionStore(redis, { prefix: app });
    await cr.set("s1", { cookie: cookie(60_000) });
    await new Promise((res) => co.set("s1", { cookie: cookie(60_000) }, res));
    expect((await admin.keys(`${app}:*`)).sort()).toEqual([`${app}:sess:s1`, `${app}:sess:{s1}`]);
    // connect-redis' prefix given to Coordis doubles the sess part.
    expect(new RedisSessionStore(redis, { prefix: `${app}:sess:` }).prefix).toBe(`${app}:sess:`);
  });

  it("client: connect-redis 9+ talks node-redis only (an ioredis client fails); Coordis takes ioredis", async () => {
    const onIoredis = new Redis(crUrl, { enableReadyCheck: false });
    try {
      const cr = new RedisStore({ client: onIoredis, prefix: `${testPrefix("mig-cr")}:sess:` });
      await expect(cr.set("s", { cookie: cookie(60_000) })).rejects.toThrow(/syntax error/);
      await expect(cr.length()).rejects.toThrow(/scanIterator is not a function/);
    } finally {
      onIoredis.disconnect();
    }
  });

  it("ttl default 1 day; the cookie's expires first on both; a cookie with maxAge only: connect-redis ignores it, Coordis uses it", async () => {
    const { crKey, coKey, setBoth } = stores();
    const none = { cookie: {} } as Session;
    await setBoth("none", none);
    expect(await pttl(crKey("none"))).toBeGreaterThan(86_300_000);
    expect(await pttl(coKey("none"))).toBeGreaterThan(86_300_000);

    const expiring = { cookie: cookie(30_000) };
    await setBoth("exp", expiring);
    for (const key of [crKey("exp"), coKey("exp")]) {
      expect(await pttl(key)).toBeGreaterThan(20_000);
      expect(await pttl(key)).toBeLessThanOrEqual(30_000);
    }

    const maxAgeOnly = { cookie: { originalMaxAge: 30_000, maxAge: 30_000 } };
    await setBoth("age", maxAgeOnly);
    expect(await pttl(crKey("age"))).toBeGreaterThan(86_300_000);
    expect(await pttl(coKey("age"))).toBeLessThanOrEqual(30_000);
  });

  it("a number ttl applies to a cookie without expires (none, or a falsy one), on both (seconds there, ms here)", async () => {
    const { cr, crKey, coKey, coApi, setBoth } = stores({ ttl: 120 }, { ttlMs: 120_000 });
    await cr.set("none", { cookie: {} });
    await coApi.set("none", { cookie: {} } as Session);
    await setBoth("exp", { cookie: cookie(30_000) });
    for (const key of [crKey("none"), coKey("none")]) {
      expect(await pttl(key)).toBeGreaterThan(110_000);
      expect(await pttl(key)).toBeLessThanOrEqual(120_000);
    }
    for (const key of [crKey("exp"), coKey("exp")]) expect(await pttl(key)).toBeLessThanOrEqual(30_000);

    // A falsy expires (false: older express-session apps) counts as none on both; get gives it back as it is.
    await setBoth("false", { cookie: { expires: false, originalMaxAge: null }, user: "ada" });
    for (const key of [crKey("false"), coKey("false")]) expect(await pttl(key)).toBeGreaterThan(110_000);
    expect((await cr.get("false")).cookie.expires).toBe(false);
    expect((await coApi.get("false"))?.cookie?.expires).toBe(false);
  });

  it("ttl as a function decides for every session, the cookie notwithstanding; ≤ 0 deletes the session on both", async () => {
    const ttl = (user: unknown) => (user === "admin" ? 10 : user === "gone" ? 0 : 200);
    const { cr, crKey, coKey, coApi, setBoth } = stores(
      { ttl: (s) => ttl(s.user) },
      { ttlMs: (s) => ttl(s.user) * 1000 },
    );
    await setBoth("a", { cookie: cookie(3_600_000), user: "admin" });
    await setBoth("u", { cookie: cookie(3_600_000), user: "user" });
    for (const key of [crKey("a"), coKey("a")]) expect(await pttl(key)).toBeLessThanOrEqual(10_000);
    for (const key of [crKey("u"), coKey("u")]) {
      expect(await pttl(key)).toBeGreaterThan(150_000);
      expect(await pttl(key)).toBeLessThanOrEqual(200_000);
    }
    await setBoth("u", { cookie: cookie(3_600_000), user: "gone" });
    expect(await cr.get("u")).toBeNull();
    expect(await coApi.get("u")).toBeNull();
  });

  it("an already expired cookie deletes the session on both", async () => {
    const { crKey, coKey, setBoth } = stores();
    await setBoth("s", { cookie: cookie(60_000), user: "ada" });
    const expired = { cookie: { expires: new Date(Date.now() - 1_000).toISOString() }, user: "ada" };
    await setBoth("s", expired);
    expect(await admin.exists(crKey("s"), coKey("s"))).toBe(0);
  });

  it("touch renews the expiry without rewriting the data, on both", async () => {
    const { crKey, coKey, setBoth, touchBoth } = stores();
    await setBoth("s", { cookie: cookie(60_000), user: "ada" });
    const [crText, coText] = [await admin.get(crKey("s")), await admin.get(coKey("s"))];
    const later = { cookie: cookie(3_600_000), user: "not written by touch" };
    await touchBoth("s", later);
    for (const key of [crKey("s"), coKey("s")]) expect(await pttl(key)).toBeGreaterThan(3_000_000);
    expect(await admin.get(crKey("s"))).toBe(crText);
    expect(await admin.get(coKey("s"))).toBe(coText);
  });

  it("disableTouch: touch renews nothing on both; connect-redis' set of unchanged data still renews, Coordis' does not", async () => {
    const { cr, crKey, coKey, coApi, setBoth, touchBoth } = stores({ disableTouch: true }, { disableTouch: true });
    await setBoth("s", { cookie: cookie(60_000), user: "ada" });
    await touchBoth("s", { cookie: cookie(3_600_000), user: "ada" });
    for (const key of [crKey("s"), coKey("s")]) expect(await pttl(key)).toBeLessThanOrEqual(60_000);

    // What a rolling session saves: the session as read, only its cookie's expiry moved.
    const crRead = await cr.get("s");
    const coRead = (await coApi.get("s")) as Session;
    const later = new Date(Date.now() + 3_600_000).toISOString();
    crRead.cookie = { ...crRead.cookie, expires: later };
    coRead.cookie = { ...coRead.cookie, expires: later };
    await cr.set("s", crRead);
    await coApi.set("s", coRead);
    expect(await pttl(crKey("s"))).toBeGreaterThan(3_000_000);
    expect(await pttl(coKey("s"))).toBeLessThanOrEqual(60_000);
  });

  it("a save of unchanged data: connect-redis rewrites it (a concurrent change is lost), Coordis only renews the expiry", async () => {
    const { cr, coApi, setBoth } = stores();
    await setBoth("s", { cookie: cookie(60_000), cart: [] });
    // Request A reads; request B reads, adds to the cart and saves; A (rolling) saves what it read.
    const [crA, coA] = [await cr.get("s"), (await coApi.get("s")) as Session];
    const [crB, coB] = [await cr.get("s"), (await coApi.get("s")) as Session];
    crB.cart = ["apple"];
    coB.cart = ["apple"];
    await cr.set("s", crB);
    await coApi.set("s", coB);
    crA.cookie = cookie(60_000);
    coA.cookie = cookie(60_000);
    await cr.set("s", crA);
    await coApi.set("s", coA);
    expect((await cr.get("s")).cart).toEqual([]);
    expect((await coApi.get("s"))?.cart).toEqual(["apple"]);
  });

  it("destroy: gone on both; a late save of what was read before revives it on connect-redis, not on Coordis", async () => {
    const { cr, coApi, setBoth } = stores();
    await setBoth("s", { cookie: cookie(60_000), user: "ada" });
    const [crRead, coRead] = [await cr.get("s"), (await coApi.get("s")) as Session];
    await cr.destroy("s");
    await coApi.destroy("s");
    expect(await cr.get("s")).toBeNull();
    expect(await coApi.get("s")).toBeNull();
    crRead.user = coRead.user = "late write";
    await cr.set("s", crRead);
    await coApi.set("s", coRead);
    expect(await cr.get("s")).toMatchObject({ user: "late write" });
    expect(await coApi.get("s")).toBeNull();
  });

  it("all (each with its id), length, clear: the same answers; after clear a late save revives a session on connect-redis only", async () => {
    const { cr, coApi, setBoth } = stores();
    await setBoth("a", { cookie: cookie(60_000), user: "ada" });
    await setBoth("b", { cookie: cookie(60_000), user: "bob" });
    const pairs = (list: Array<{ id: string; user?: unknown }>) => list.map((s) => [s.id, s.user]).sort();
    expect(pairs(await cr.all())).toEqual([
      ["a", "ada"],
      ["b", "bob"],
    ]);
    expect(pairs((await coApi.all()) ?? [])).toEqual(pairs(await cr.all()));
    expect(await cr.length()).toBe(2);
    expect(await coApi.length()).toBe(2);
    const [crRead, coRead] = [await cr.get("a"), (await coApi.get("a")) as Session];
    await cr.clear();
    await coApi.clear();
    expect(await cr.length()).toBe(0);
    expect(await coApi.length()).toBe(0);
    await cr.set("a", crRead);
    await coApi.set("a", coRead);
    expect(await cr.length()).toBe(1);
    expect(await coApi.length()).toBe(0);
  });

  it("serializer { stringify, parse }: the same text stored on both; connect-redis awaits a parse that returns a promise, Coordis does not", async () => {
    const reversed = (s: string) => [...s].reverse().join("");
    const serializer = {
      stringify: (s: object) => reversed(JSON.stringify(s)),
      parse: (t: string) => JSON.parse(reversed(t)),
    };
    const { cr, crKey, coKey, coApi, setBoth } = stores({ serializer }, { serializer });
    const session = { cookie: cookie(60_000), user: "ada" };
    await setBoth("s", session);
    expect(await admin.get(crKey("s"))).toBe(reversed(JSON.stringify(session)));
    expect(await admin.get(coKey("s"))).toBe(await admin.get(crKey("s")));
    expect(await cr.get("s")).toMatchObject({ user: "ada" });
    expect(await coApi.get("s")).toMatchObject({ user: "ada" });

    const asyncParse = { ...serializer, parse: async (t: string) => serializer.parse(t) };
    const after = stores({ serializer: asyncParse }, { serializer: asyncParse });
    await after.cr.set("s", session);
    await after.coApi.set("s", session);
    expect(await after.cr.get("s")).toMatchObject({ user: "ada" });
    const coUser = await after.coApi.get("s").then(
      (s) => s?.user,
      () => undefined,
    );
    expect(coUser).toBeUndefined();
  });

  it("callbacks on both (null for an unknown id); connect-redis' promise form (await store.get(sid)) is not offered by Coordis", async () => {
    const { cr, co, coApi } = stores();
    await coApi.set("s", { cookie: cookie(60_000), user: "ada" });
    await new Promise((res) => cr.set("s", { cookie: cookie(60_000), user: "ada" }, res));
    expect(await cr.get("nobody")).toBeNull();
    expect(await coApi.get("nobody")).toBeNull();
    const viaCallback = await new Promise((res) => cr.get("s", (_err, s) => res(s)));
    expect(viaCallback).toMatchObject({ user: "ada" });
    expect(await cr.get("s")).toMatchObject({ user: "ada" });
    expect(await cr.length()).toBe(1);

    expect(co.get("s", () => {})).toBeUndefined();
    const bare = co as unknown as { get(id: string): unknown; length(): unknown };
    expect(() => bare.get("s")).toThrow(InvalidArgumentError);
    expect(() => bare.length()).toThrow(InvalidArgumentError);
  });

  it("scanCount, disableTTL, ids: connect-redis' options and method; Coordis refuses the options and has no ids", async () => {
    const { cr, crKey } = stores({ disableTTL: true, scanCount: 10 });
    await cr.set("s", { cookie: cookie(60_000) });
    expect(await pttl(crKey("s"))).toBe(-1);
    expect(await cr.ids()).toEqual(["s"]);
    for (const option of ["disableTTL", "scanCount"]) {
      expect(() => new RedisSessionStore(redis, { [option]: 1 } as SessionStoreOptions)).toThrow(InvalidArgumentError);
    }
    expect("ids" in new RedisSessionStore(redis)).toBe(false);
  });

  it("express-session's Store: connect-redis' RedisStore is one (on, createSession, regenerate, load); Coordis' is not", () => {
    const { cr, co } = stores();
    const storeMethods = ["on", "emit", "createSession", "regenerate", "load"];
    for (const m of storeMethods) expect(typeof (cr as unknown as Record<string, unknown>)[m]).toBe("function");
    for (const m of storeMethods) expect(m in co).toBe(false);
  });
});

describe("@fastify/session on connect-redis and on RedisSessionStore: same requests, same answers", () => {
  const SECRET = "a-secret-of-at-least-thirty-two-characters!";

  async function app(store: unknown): Promise<FastifyInstance> {
    const a = Fastify();
    apps.push(a);
    await a.register(fastifyCookie);
    await a.register(fastifySession, {
      secret: SECRET,
      saveUninitialized: false,
      cookie: { secure: false, maxAge: 3_600_000 },
      store: store as NonNullable<Parameters<typeof fastifySession>[1]>["store"],
    });
    a.get("/me", async (req) => ({ user: req.session.user ?? null, cart: req.session.cart ?? [] }));
    a.post<{ Querystring: { name: string } }>("/login", async (req) => {
      await req.session.regenerate();
      req.session.user = req.query.name;
      return { ok: true };
    });
    a.post("/logout", async (req) => {
      await req.session.destroy();
      return { ok: true };
    });
    a.post<{ Params: { item: string } }>("/cart/:item", async (req) => {
      req.session.cart = [...(req.session.cart ?? []), req.params.item];
      return { cart: req.session.cart };
    });
    return a;
  }

  function browser(a: FastifyInstance) {
    let cookieHeader: string | undefined;
    return {
      request: async (method: "GET" | "POST", url: string) => {
        const res = await a.inject({ method, url, headers: cookieHeader ? { cookie: cookieHeader } : {} });
        const set = res.cookies.find((c) => c.name === "sessionId");
        if (set) cookieHeader = `sessionId=${set.value}`;
        return res.json() as unknown;
      },
    };
  }

  it("login (regenerate), cart, logout", async () => {
    const { cr, co } = stores();
    const [onCr, onCo] = [browser(await app(cr)), browser(await app(co))];
    const both = async (method: "GET" | "POST", url: string) => {
      const [a, b] = [await onCr.request(method, url), await onCo.request(method, url)];
      expect(b).toEqual(a);
      return a;
    };
    expect(await both("GET", "/me")).toEqual({ user: null, cart: [] });
    await both("POST", "/login?name=ada");
    await both("POST", "/cart/apple");
    expect(await both("GET", "/me")).toEqual({ user: "ada", cart: ["apple"] });
    await both("POST", "/logout");
    expect(await both("GET", "/me")).toEqual({ user: null, cart: [] });
  });
});

describe("express-session on connect-redis", () => {
  it("disableTouch: an unchanged request calls touch (renews nothing), a changed one calls set (renews)", async () => {
    // express-session ships no types: loaded by a specifier TypeScript does not resolve.
    type Middleware = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;
    const specifier = "express-session";
    const session = ((await import(specifier)) as { default: (options: object) => Middleware }).default;
    const { cr, crKey } = stores({ disableTouch: true });
    const touched: string[] = [];
    const touch = cr.touch.bind(cr);
    cr.touch = (sid, sess, cb) => {
      touched.push(sid);
      return touch(sid, sess, cb);
    };
    const middleware = session({ store: cr, secret: "s3cret", resave: false, saveUninitialized: false, rolling: true });
    const http = createServer((req, res) =>
      middleware(req, res, () => {
        const s = (req as IncomingMessage & { session: Session }).session;
        if (req.url !== "/me") s.cart = [...(s.cart ?? []), req.url ?? ""];
        res.end(JSON.stringify(s.cart));
      }),
    );
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    try {
      let cookieHeader = "";
      const request = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${(http.address() as AddressInfo).port}${path}`, {
          headers: { cookie: cookieHeader },
        });
        cookieHeader = res.headers.getSetCookie()[0]?.split(";")[0] ?? cookieHeader;
        return res.json() as Promise<unknown>;
      };
      expect(await request("/apple")).toEqual(["/apple"]);
      const key = crKey(((await cr.ids()) as string[])[0] ?? "");
      await admin.pexpire(key, 30_000);
      expect(await request("/me")).toEqual(["/apple"]);
      expect(touched).toHaveLength(1);
      expect(await pttl(key)).toBeLessThanOrEqual(30_000);
      expect(await request("/pear")).toEqual(["/apple", "/pear"]);
      expect(touched).toHaveLength(1);
      expect(await pttl(key)).toBeGreaterThan(86_000_000);
    } finally {
      await new Promise((resolve) => http.close(resolve));
    }
  });
});
