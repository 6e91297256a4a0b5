import { randomBytes } from "node:crypto";
import { connect, InvalidArgumentError, type RedisClient, ScriptError } from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RedisSessionStore, type SessionData } from "../src/index.js";
import { sessionApi } from "./helpers.js";

const prefix = testPrefix();

describe("RedisSessionStore", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("set / get / destroy; the TTL comes from the cookie", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    const session = { user: "ada", cookie: { maxAge: 60_000 } };
    await s.set("sid-1", session);
    expect(await s.get("sid-1")).toEqual(session);
    const ttl = await redis.pttl(`${prefix}:sess:{sid-1}`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
    await s.set("sid-2", { user: "bob", cookie: { expires: new Date(Date.now() + 30_000).toISOString() } });
    const ttl2 = await redis.pttl(`${prefix}:sess:{sid-2}`);
    expect(ttl2).toBeGreaterThan(20_000);
    expect(ttl2).toBeLessThanOrEqual(30_000);
    await s.set("sid-3", { user: "eve" }); // no cookie expiry: the default (1 day)
    expect(await redis.pttl(`${prefix}:sess:{sid-3}`)).toBeGreaterThan(23 * 3600_000);
    await s.destroy("sid-1");
    expect(await s.get("sid-1")).toBeNull();
    expect(await s.get("never")).toBeNull();
  });

  it("the session expires with its cookie", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("short", { user: "x", cookie: { maxAge: 200 } });
    expect(await s.get("short")).not.toBeNull();
    await waitUntil("the session to expire", async () => (await s.get("short")) === null, 3_000);
    await s.set("expired", { user: "x", cookie: { expires: new Date(Date.now() - 1000) } });
    expect(await s.get("expired")).toBeNull();
  });

  it("touch and unchanged sets renew the expiry without rewriting the data", async () => {
    const store = new RedisSessionStore(redis, { prefix });
    const s = sessionApi(store);
    const session = { user: "ada", cart: [1, 2, 3], cookie: { maxAge: 5_000 } };
    await s.set("t-1", session);
    await s.set("t-2", session);
    await s.touch("t-2", session); // loads the touch script into the server's script cache
    const touched = await countCommands(server, () => s.touch("t-1", { ...session, cookie: { maxAge: 90_000 } }));
    expect(touched.sent).toEqual({ evalsha: 1 });
    expect(touched.executed.set ?? 0).toBe(0);
    expect(await redis.pttl(`${prefix}:sess:{t-1}`)).toBeGreaterThan(80_000);
    const same = await countCommands(server, () => s.set("t-2", { ...session, cookie: { maxAge: 5_000 } }));
    expect(same.executed.set ?? 0).toBe(0);
    expect(same.executed.pexpire).toBe(1);
    const changed = await countCommands(server, () => s.set("t-2", { ...session, user: "bob" }));
    expect(changed.executed.set).toBe(1);
    expect(await s.get("t-2")).toMatchObject({ user: "bob" });
    // touching a destroyed session does not bring it back
    await s.destroy("t-1");
    await s.touch("t-1", session);
    expect(await s.get("t-1")).toBeNull();
  });

  it("an unchanged save of a session whose key is gone since it was read (expired, evicted) stores it again", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("gone", { user: "ada", cookie: { maxAge: 60_000 } });
    const read = (await s.get("gone")) as SessionData;
    // The key ends while the request runs (as at the end of its TTL, or evicted under maxmemory).
    expect(await redis.del(`${prefix}:sess:{gone}`)).toBe(1);
    await s.set("gone", read);
    expect(await s.get("gone")).toMatchObject({ user: "ada" });
    expect(await redis.pttl(`${prefix}:sess:{gone}`)).toBeGreaterThan(50_000);
    // A destroyed session still stays destroyed.
    const again = (await s.get("gone")) as SessionData;
    await s.destroy("gone");
    await s.set("gone", again);
    expect(await s.get("gone")).toBeNull();
  });

  it("an unchanged save that stores a gone session again keeps a change another request stored meanwhile", async () => {
    const writer = sessionApi(new RedisSessionStore(redis, { prefix }));
    // The slow request's client runs `between` once Redis answered its touch (2 keys, 1 argument), before its set.
    let between: (() => Promise<unknown>) | undefined;
    const hooked = new Proxy(redis, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (property !== "evalsha") return typeof value === "function" ? value.bind(target) : value;
        return async (...args: Parameters<RedisClient["evalsha"]>) => {
          const reply = await target.evalsha(...args);
          const run = between;
          if (args[1] === 2 && args.length === 5 && run !== undefined) {
            between = undefined;
            await run();
          }
          return reply;
        };
      },
    });
    const slow = sessionApi(new RedisSessionStore(hooked, { prefix }));
    await writer.set("restore", { user: "ada", cookie: { maxAge: 60_000 } });
    const read = (await slow.get("restore")) as SessionData;
    expect(await redis.del(`${prefix}:sess:{restore}`)).toBe(1); // gone while the slow request runs
    // Another request of the same session stores a change after the slow one found the key gone.
    between = () => writer.set("restore", { user: "ada", cart: [1], cookie: { maxAge: 60_000 } });
    await slow.set("restore", read);
    expect(between).toBeUndefined();
    expect(await writer.get("restore")).toMatchObject({ user: "ada", cart: [1] });
  });

  it("a slow request saving after logout cannot revive the session (tombstone)", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("race", { user: "ada", cookie: { maxAge: 60_000 } });
    // 20 slow requests read the session, the user logs out, then they all save (some concurrently with destroy).
    const read = await s.get("race");
    expect(read).not.toBeNull();
    const saves = Array.from({ length: 20 }, (_, i) =>
      new Promise((r) => setTimeout(r, i % 5)).then(() => s.set("race", { ...(read as SessionData), n: i })),
    );
    await s.destroy("race");
    await Promise.all(saves);
    expect(await s.get("race")).toBeNull();
    expect(await redis.exists(`${prefix}:sess:{race}`)).toBe(0);
  });

  it("clear() logs everybody out for good: a request that read a session before saves nothing after", async () => {
    // clear() walks the prefix with SCAN, an ACL extra the least-privilege user lacks.
    const admin = server.adminClient();
    const p = `${prefix}-clear`;
    const s = sessionApi(new RedisSessionStore(admin, { prefix: p }));
    await s.set("c1", { user: "ada", cookie: { maxAge: 60_000 } });
    const read = (await s.get("c1")) as SessionData;
    await new Promise<void>((resolve, reject) =>
      new RedisSessionStore(admin, { prefix: p }).clear((err) => (err ? reject(err) : resolve())),
    );
    await s.set("c1", read); // unchanged: would only have renewed the expiry, or written it again once gone
    await s.set("c1", { ...read, n: 1 }); // changed
    expect(await s.get("c1")).toBeNull();
  });

  it("a serializer that writes one session two ways (random IV): a slow unchanged save keeps another's change", async () => {
    const serializer = {
      stringify: (o: unknown) =>
        `${randomBytes(6).toString("hex")}.${Buffer.from(JSON.stringify(o)).toString("base64")}`,
      parse: (text: string) => JSON.parse(Buffer.from(text.split(".")[1] as string, "base64").toString()),
    };
    const s = sessionApi(new RedisSessionStore(redis, { prefix, serializer }));
    await s.set("enc", { cart: 0, cookie: { maxAge: 60_000 } });
    const slow = (await s.get("enc")) as SessionData & { cart: number };
    const fast = (await s.get("enc")) as SessionData & { cart: number };
    fast.cart = 5;
    await s.set("enc", fast);
    await s.set("enc", slow); // read before the change, saved unchanged after it
    expect(await s.get("enc")).toMatchObject({ cart: 5 });
  });

  it("bad input reaches the callback as InvalidArgumentError, before any command", async () => {
    const store = new RedisSessionStore(redis, { prefix });
    const s = sessionApi(store);
    const { roundTrips } = await countCommands(server, async () => {
      await expect(s.get("")).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(s.set("a{b}", { user: "x" })).rejects.toMatchObject({ argument: "sessionId" });
      const cyclic: SessionData = {};
      cyclic.self = cyclic;
      await expect(s.set("ok", cyclic)).rejects.toMatchObject({ argument: "session" });
      await expect(s.destroy("x".repeat(600))).rejects.toBeInstanceOf(InvalidArgumentError);
    });
    expect(roundTrips).toBe(0);
    expect(() => new RedisSessionStore(redis, { ttlMs: 0 })).toThrow(InvalidArgumentError);
    expect(() => new RedisSessionStore(redis, { tombstoneMs: -1 })).toThrow(InvalidArgumentError);
  });

  it("a serializer or ttl function that throws is reported as such, not as a Redis error, and writes nothing", async () => {
    // A stored session the serializer cannot read (corrupted, or encrypted under another key).
    const unreadable = sessionApi(
      new RedisSessionStore(redis, {
        prefix,
        serializer: {
          stringify: JSON.stringify,
          parse: () => {
            throw new Error("bad MAC");
          },
        },
      }),
    );
    await unreadable.set("unreadable", { user: "ada" });
    const read = await unreadable.get("unreadable").catch((err: unknown) => err);
    expect(read).toMatchObject({ code: "ERR_SESSION_DECODE" });
    expect(read).not.toBeInstanceOf(ScriptError);
    expect((read as Error).message).toContain("bad MAC");
    // A ttl function that throws: the application's error, named as the option's, nothing stored.
    const failingTtl = sessionApi(
      new RedisSessionStore(redis, {
        prefix,
        ttlMs: () => {
          throw new Error("no plan for this user");
        },
      }),
    );
    const saved = await failingTtl.set("ttl-throws", { user: "ada" }).catch((err: unknown) => err);
    expect(saved).toBeInstanceOf(InvalidArgumentError);
    expect(saved).toMatchObject({ argument: "options.ttlMs" });
    expect((saved as Error).message).toContain("no plan for this user");
    expect(await redis.exists(`${prefix}:sess:{ttl-throws}`)).toBe(0);
  });

  it("a serializer whose parse returns a promise (an async decrypt) is refused as such, not read as an empty session", async () => {
    const s = sessionApi(
      new RedisSessionStore(redis, {
        prefix,
        serializer: { stringify: JSON.stringify, parse: async (text: string) => JSON.parse(text) },
      }),
    );
    await s.set("async-parse", { user: "ada" });
    const read = await s.get("async-parse").catch((err: unknown) => err);
    expect(read).toMatchObject({ code: "ERR_SESSION_DECODE" });
    expect((read as Error).message).toContain("returned a promise");
    expect(await redis.exists(`${prefix}:sess:{async-parse}`)).toBe(1);
  });

  it("touch with an already expired cookie deletes the session, as set does; with disableTouch it does nothing", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    const past = { expires: new Date(Date.now() - 1_000).toISOString() };
    await s.set("touch-expired", { user: "ada", cookie: { maxAge: 60_000 } });
    await s.touch("touch-expired", { user: "ada", cookie: past });
    expect(await redis.exists(`${prefix}:sess:{touch-expired}`)).toBe(0);
    const quiet = sessionApi(new RedisSessionStore(redis, { prefix, disableTouch: true }));
    await quiet.set("touch-expired-quiet", { user: "ada", cookie: { maxAge: 60_000 } });
    await quiet.touch("touch-expired-quiet", { user: "ada", cookie: past });
    expect(await redis.exists(`${prefix}:sess:{touch-expired-quiet}`)).toBe(1);
  });

  it("works on Redis Cluster", async () => {
    const cluster = connect(inject("coordisClusterUrl"));
    try {
      const s = sessionApi(new RedisSessionStore(cluster, { prefix }));
      for (let i = 0; i < 10; i++) await s.set(`c-${i}`, { i, cookie: { maxAge: 60_000 } });
      for (let i = 0; i < 10; i++) expect(await s.get(`c-${i}`)).toMatchObject({ i });
      await s.destroy("c-3");
      await s.set("c-3", { i: 3 });
      expect(await s.get("c-3")).toBeNull();
    } finally {
      cluster.disconnect();
    }
  });
});
