/**
 * packages/cache README, "Migrating from bentocache and connect-redis" (the session half) and "Sessions":
 * @fastify/session (the installed devDependency) run side by side with its own MemoryStore and with
 * RedisSessionStore on one real Redis, on the same requests; then the store-level mappings of the connect-redis rows
 * (prefix, ttl as a number and as a function, disableTouch, touch, destroy, all/length/clear, serializer, callbacks).
 */

import { RedisSessionStore, type SessionData, type SessionStoreOptions } from "@coordis/cache";
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import fastifyCookie from "@fastify/cookie";
import fastifySession, { MemoryStore } from "@fastify/session";
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

declare module "fastify" {
  interface Session {
    user?: string;
    cart?: string[];
  }
}

const SECRET = "a-secret-of-at-least-thirty-two-characters!";
let server: RedisServer;
let redis: RedisClient;
let admin: RedisClient;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  // all/length/clear walk the prefix with SCAN: the documented optional ACL extra.
  server = await startRedis({ leastPrivilege: { extraRules: ["+scan"] } });
  redis = connect(server.url);
  admin = connect(server.adminUrl);
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});
afterAll(async () => {
  redis?.disconnect();
  admin?.disconnect();
  await server?.stop();
});

let n = 0;
const uniquePrefix = () => `${testPrefix("mig-sess")}${++n}`;

type AppOptions = { maxAge?: number; rolling?: boolean };
/** The same application on a given store. */
async function app(store: unknown, options: AppOptions = {}): Promise<FastifyInstance> {
  const a = Fastify();
  apps.push(a);
  await a.register(fastifyCookie);
  await a.register(fastifySession, {
    secret: SECRET,
    saveUninitialized: false,
    rolling: options.rolling ?? true,
    cookie: { secure: false, maxAge: options.maxAge ?? 3_600_000 },
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

/** A browser: keeps the session cookie it was given. */
function browser(a: FastifyInstance) {
  let cookie: string | undefined;
  const request = async (method: "GET" | "POST", url: string): Promise<LightMyRequestResponse> => {
    const res = await a.inject({ method, url, headers: cookie ? { cookie } : {} });
    const set = res.cookies.find((c) => c.name === "sessionId");
    if (set) cookie = `sessionId=${set.value}`;
    return res;
  };
  return {
    request,
    me: async () => (await request("GET", "/me")).json() as { user: string | null; cart: string[] },
    get cookie() {
      return cookie;
    },
    set cookie(value) {
      cookie = value;
    },
  };
}

/** The session id inside a signed cookie `sessionId=<id>.<signature>`. */
const idOf = (cookie: string | undefined) => decodeURIComponent(cookie?.split("=")[1] ?? "").split(".")[0] ?? "";

/** Promise wrappers over the store's callback API. */
function api(store: RedisSessionStore) {
  const cb =
    <T>(resolve: (v: T) => void, reject: (e: unknown) => void) =>
    (err: unknown, v?: T) =>
      err ? reject(err) : resolve(v as T);
  return {
    get: (id: string) => new Promise<SessionData | null | undefined>((res, rej) => store.get(id, cb(res, rej))),
    set: (id: string, s: SessionData) => new Promise<void>((res, rej) => store.set(id, s, cb(res, rej))),
    touch: (id: string, s: SessionData) => new Promise<void>((res, rej) => store.touch(id, s, cb(res, rej))),
    destroy: (id: string) => new Promise<void>((res, rej) => store.destroy(id, cb(res, rej))),
    all: () => new Promise<Array<SessionData & { id: string }> | undefined>((res, rej) => store.all(cb(res, rej))),
    length: () => new Promise<number | undefined>((res, rej) => store.length(cb(res, rej))),
    clear: () => new Promise<void>((res, rej) => store.clear(cb(res, rej))),
  };
}

function redisStore(options: SessionStoreOptions = {}) {
  const prefix = options.prefix ?? uniquePrefix();
  const store = new RedisSessionStore(redis, { ...options, prefix });
  return { store, prefix, key: (id: string) => `${prefix}:sess:{${id}}`, ...api(store) };
}

describe("@fastify/session: MemoryStore → RedisSessionStore, same requests, same answers", () => {
  it("login (regenerate), cart, logout: every answer the same on both stores", async () => {
    const memory = browser(await app(new MemoryStore()));
    const inRedis = browser(await app(redisStore().store));
    const both = async (f: (b: ReturnType<typeof browser>) => Promise<unknown>) => {
      const [a, b] = [await f(memory), await f(inRedis)];
      expect(b).toEqual(a);
      return a;
    };
    expect(await both((b) => b.me())).toEqual({ user: null, cart: [] });
    await both(async (b) => (await b.request("POST", "/login?name=ada")).statusCode);
    const loggedIn = { memory: memory.cookie, redis: inRedis.cookie };
    expect(await both((b) => b.me())).toEqual({ user: "ada", cart: [] });
    await both(async (b) => (await b.request("POST", "/cart/apple")).json());
    await both(async (b) => (await b.request("POST", "/cart/pear")).json());
    expect(await both((b) => b.me())).toEqual({ user: "ada", cart: ["apple", "pear"] });

    // Logging in again regenerates the id: the cookie of before no longer opens the session.
    await both(async (b) => (await b.request("POST", "/login?name=bob")).statusCode);
    expect(memory.cookie).not.toBe(loggedIn.memory);
    expect(inRedis.cookie).not.toBe(loggedIn.redis);
    const [now1, now2] = [memory.cookie, inRedis.cookie];
    memory.cookie = loggedIn.memory;
    inRedis.cookie = loggedIn.redis;
    expect(await both((b) => b.me())).toEqual({ user: null, cart: [] });
    memory.cookie = now1;
    inRedis.cookie = now2;
    expect(await both((b) => b.me())).toEqual({ user: "bob", cart: [] });

    await both(async (b) => (await b.request("POST", "/logout")).statusCode);
    memory.cookie = now1;
    inRedis.cookie = now2;
    expect(await both((b) => b.me())).toEqual({ user: null, cart: [] });
  });

  it("the cookie's maxAge is the session's lifetime: after it, the session is gone on both stores", async () => {
    const store = redisStore();
    const memory = browser(await app(new MemoryStore(), { maxAge: 300, rolling: false }));
    const inRedis = browser(await app(store.store, { maxAge: 300, rolling: false }));
    await memory.request("POST", "/login?name=ada");
    await inRedis.request("POST", "/login?name=ada");
    expect((await memory.me()).user).toBe("ada");
    const pttl = await admin.pttl(store.key(idOf(inRedis.cookie)));
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(300);
    await waitUntil("the MemoryStore session to expire", async () => (await memory.me()).user === null);
    await waitUntil("the Redis session to expire", async () => (await inRedis.me()).user === null);
    expect(await admin.exists(store.key(idOf(inRedis.cookie)))).toBe(0);
  });

  it("rolling sessions: a request renews the Redis key's expiry (an unchanged set renews, it does not rewrite)", async () => {
    const store = redisStore();
    const b = browser(await app(store.store, { maxAge: 3_600_000, rolling: true }));
    await b.request("POST", "/login?name=ada");
    const key = store.key(idOf(b.cookie));
    const text = await admin.get(key);
    await admin.pexpire(key, 60_000);
    expect((await b.me()).user).toBe("ada");
    expect(await admin.pttl(key)).toBeGreaterThan(3_000_000);
    expect(await admin.get(key)).toBe(text);
  });
});

describe("connect-redis → RedisSessionStore, store by store", () => {
  const cookie = (ms: number) => ({ originalMaxAge: ms, expires: new Date(Date.now() + ms).toISOString() });

  it("prefix: sessions live at <prefix>:sess:{<id>}; connect-redis' 'myapp:sess:' would double the sess part", async () => {
    const app = uniquePrefix(); // "myapp" (the test server's ACL admits the suite's prefixes only)
    const store = redisStore({ prefix: app });
    await store.set("s1", { cookie: cookie(60_000), user: "ada" });
    expect(await admin.exists(`${app}:sess:{s1}`)).toBe(1);
    await store.destroy("s1");
    const legacy = redisStore({ prefix: `${app}:sess:` });
    expect(legacy.store.prefix).toBe(`${app}:sess:`);
    await legacy.set("s1", { cookie: cookie(60_000) });
    expect(await admin.exists(`${app}:sess::sess:{s1}`)).toBe(1);
    await legacy.destroy("s1");
  });

  it("get of an unknown id calls back with null, as connect-redis does", async () => {
    expect(await redisStore().get("nobody")).toBeNull();
  });

  it("ttl: the cookie first; a number ttlMs only for a cookie without expires/maxAge (default 1 day)", async () => {
    const store = redisStore({ ttlMs: 120_000 });
    await store.set("with-cookie", { cookie: cookie(30_000) });
    await store.set("no-cookie", { cookie: {} } as SessionData);
    const withCookie = await admin.pttl(store.key("with-cookie"));
    expect(withCookie).toBeGreaterThan(20_000);
    expect(withCookie).toBeLessThanOrEqual(30_000);
    const noCookie = await admin.pttl(store.key("no-cookie"));
    expect(noCookie).toBeGreaterThan(110_000);
    expect(noCookie).toBeLessThanOrEqual(120_000);

    const defaults = redisStore();
    await defaults.set("d", { cookie: {} } as SessionData);
    expect(await admin.pttl(defaults.key("d"))).toBeGreaterThan(86_000_000);
  });

  it("ttl as a function of the session → ttlMs (session) => ms: decides for every session; ≤ 0 deletes", async () => {
    const store = redisStore({ ttlMs: (s) => (s.user === "admin" ? 10_000 : s.user === "gone" ? 0 : 200_000) });
    await store.set("a", { cookie: cookie(3_600_000), user: "admin" });
    await store.set("u", { cookie: cookie(3_600_000), user: "user" });
    expect(await admin.pttl(store.key("a"))).toBeLessThanOrEqual(10_000);
    expect(await admin.pttl(store.key("u"))).toBeGreaterThan(150_000);
    expect(await admin.pttl(store.key("u"))).toBeLessThanOrEqual(200_000);
    await store.set("u", { cookie: cookie(3_600_000), user: "gone" });
    expect(await store.get("u")).toBeNull();
  });

  it("an already expired cookie deletes the session, as connect-redis' set does", async () => {
    const store = redisStore();
    await store.set("s", { cookie: cookie(60_000), user: "ada" });
    await store.set("s", { cookie: { expires: new Date(Date.now() - 1_000).toISOString() }, user: "ada" });
    expect(await admin.exists(store.key("s"))).toBe(0);
  });

  it("touch renews the expiry without rewriting the data", async () => {
    const store = redisStore();
    await store.set("s", { cookie: cookie(60_000), user: "ada" });
    const text = await admin.get(store.key("s"));
    await store.touch("s", { cookie: cookie(3_600_000), user: "changed, but touch does not write" });
    expect(await admin.pttl(store.key("s"))).toBeGreaterThan(3_000_000);
    expect(await admin.get(store.key("s"))).toBe(text);
  });

  it("disableTouch: touch and an unchanged set renew nothing (connect-redis' set always rewrites); a change is written", async () => {
    const store = redisStore({ disableTouch: true });
    await store.set("s", { cookie: cookie(60_000), user: "ada" });
    await store.touch("s", { cookie: cookie(3_600_000), user: "ada" });
    expect(await admin.pttl(store.key("s"))).toBeLessThanOrEqual(60_000);
    // An unchanged save (the session as read, its cookie's expiry moved: what a rolling session saves).
    const read = (await store.get("s")) as SessionData;
    expect(read).toMatchObject({ user: "ada" });
    read.cookie = { ...read.cookie, expires: new Date(Date.now() + 3_600_000).toISOString() };
    await store.set("s", read);
    expect(await admin.pttl(store.key("s"))).toBeLessThanOrEqual(60_000);
    const changed = (await store.get("s")) as SessionData;
    changed.user = "bob";
    changed.cookie = cookie(3_600_000);
    await store.set("s", changed);
    expect(await admin.pttl(store.key("s"))).toBeGreaterThan(3_000_000);
    expect(await store.get("s")).toMatchObject({ user: "bob" });
  });

  it("destroy: the session is gone, and a late save of what was read before cannot revive it", async () => {
    const store = redisStore();
    await store.set("s", { cookie: cookie(60_000), user: "ada" });
    const read = (await store.get("s")) as SessionData;
    await store.destroy("s");
    expect(await store.get("s")).toBeNull();
    read.user = "late write";
    await store.set("s", read);
    expect(await store.get("s")).toBeNull();
  });

  it("all (each with its id), length, clear", async () => {
    const store = redisStore();
    await store.set("a", { cookie: cookie(60_000), user: "ada" });
    await store.set("b", { cookie: cookie(60_000), user: "bob" });
    const all = (await store.all()) ?? [];
    expect(all.map((s) => [s.id, s.user]).sort()).toEqual([
      ["a", "ada"],
      ["b", "bob"],
    ]);
    expect(await store.length()).toBe(2);
    await store.clear();
    expect(await store.length()).toBe(0);
    expect(await store.get("a")).toBeNull();
  });

  it("serializer { stringify, parse }: used for what is stored", async () => {
    const reversed = (s: string) => [...s].reverse().join("");
    const store = redisStore({
      serializer: { stringify: (s) => reversed(JSON.stringify(s)), parse: (t) => JSON.parse(reversed(t)) },
    });
    await store.set("s", { cookie: cookie(60_000), user: "ada" });
    expect((await admin.get(store.key("s")))?.startsWith("}")).toBe(true);
    expect(await store.get("s")).toMatchObject({ user: "ada" });
  });

  it("callback style only: no promise form (connect-redis' `await store.get(sid)`)", async () => {
    const store = redisStore().store;
    const bare = store as unknown as { get(id: string): unknown };
    expect(() => bare.get("s")).toThrow(InvalidArgumentError);
    expect(store.get("s", () => {})).toBeUndefined();
  });
});
