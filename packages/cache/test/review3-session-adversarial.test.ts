import { CoordisError, connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RedisSessionStore, type SessionData } from "../src/index.js";
import { sessionApi } from "./helpers.js";

const prefix = testPrefix("sess-adv");

describe("RedisSessionStore under odd input and races", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = connect(server.url);
    admin = server.adminClient();
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("session ids with glob characters, colons, spaces and non-ASCII are stored, listed and destroyed one by one", async () => {
    const p = `${prefix}-ids`;
    const store = new RedisSessionStore(admin, { prefix: p });
    const s = sessionApi(store);
    // "a:gone" looks like the tombstone suffix of "a"; "*", "?" and "[" are SCAN glob characters.
    const ids = ["a", "a:gone", "*", "a?", "[ab]", "x y\nz", "ünï-😀", "\\"];
    for (const [i, id] of ids.entries()) await s.set(id, { i, cookie: { maxAge: 60_000 } });
    await s.destroy("a"); // its tombstone must neither show as a session nor touch "a:gone"
    const all = await new Promise<Array<SessionData & { id: string }>>((resolve, reject) =>
      store.all((err, list) => (err ? reject(err) : resolve(list ?? []))),
    );
    const expected = ids.filter((id) => id !== "a");
    expect(all.map((x) => x.id).sort()).toEqual([...expected].sort());
    for (const x of all) expect(x.i).toBe(ids.indexOf(x.id));
    const length = await new Promise<number>((resolve, reject) =>
      store.length((err, n) => (err ? reject(err) : resolve(n ?? -1))),
    );
    expect(length).toBe(expected.length);
    expect(await s.get("a:gone")).toMatchObject({ i: 1 });
    await s.set("a:gone", { i: 1, changed: true, cookie: { maxAge: 60_000 } });
    expect(await s.get("a:gone")).toMatchObject({ changed: true });
    expect(await s.get("a")).toBeNull();
  });

  it.each([
    ["maxAge 0", { maxAge: 0 }],
    ["maxAge negative", { maxAge: -5_000 }],
    ["originalMaxAge 0 without maxAge", { maxAge: null, originalMaxAge: 0 }],
    ["expires now", { expires: new Date(Date.now() - 1) }],
    ["expires one day ago, positive maxAge", { expires: new Date(Date.now() - 86_400_000), maxAge: 60_000 }],
  ])("%s: a save deletes the stored session and stores nothing, a touch too", async (kind, cookie) => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    const sid = `dead-${kind.replace(/\W/g, "-")}`;
    await s.set(sid, { user: "ada", cookie: { maxAge: 60_000 } });
    const read = (await s.get(sid)) as SessionData;
    await s.set(sid, { ...read, cookie } as SessionData);
    expect(await redis.exists(`${prefix}:sess:{${sid}}`)).toBe(0);
    await s.set(`${sid}-new`, { user: "bob", cookie } as SessionData);
    expect(await redis.exists(`${prefix}:sess:{${sid}-new}`)).toBe(0);
    await s.set(sid, { user: "ada", cookie: { maxAge: 60_000 } });
    await s.touch(sid, { user: "ada", cookie } as SessionData);
    expect(await redis.exists(`${prefix}:sess:{${sid}}`)).toBe(0);
  });

  it("fractional and huge lifetimes: at least 1 ms, at most the longest duration; never 'no expiry'", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("frac", { cookie: { maxAge: 60_000.4 } });
    const frac = await redis.pttl(`${prefix}:sess:{frac}`);
    expect(frac).toBeGreaterThan(50_000);
    expect(frac).toBeLessThanOrEqual(60_001);
    await s.set("huge", { cookie: { maxAge: Number.MAX_SAFE_INTEGER } });
    const huge = await redis.pttl(`${prefix}:sess:{huge}`);
    expect(huge).toBeGreaterThan(0);
    await s.set("far", { cookie: { expires: new Date(8.64e15).toISOString() } });
    expect(await redis.pttl(`${prefix}:sess:{far}`)).toBeGreaterThan(0);
  });

  it("a huge session (4 MB) round-trips, and saving it back unchanged only renews its expiry", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    const blob = "x".repeat(4 * 1024 * 1024);
    await s.set("big", { blob, n: 1, cookie: { maxAge: 5_000 } });
    const read = (await s.get("big")) as SessionData;
    expect((read.blob as string).length).toBe(blob.length);
    read.cookie = { ...read.cookie, maxAge: 90_000 }; // a rolling request: only the cookie's expiry moved
    const { executed } = await countCommands(server, () => s.set("big", read));
    expect(executed.set ?? 0).toBe(0);
    expect(await redis.pttl(`${prefix}:sess:{big}`)).toBeGreaterThan(80_000);
  });

  it("a session read back holds exactly the data stored: a '__proto__' field stays data, nothing becomes inherited", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    // JSON.parse makes "__proto__" an own data property (as a request body parsed into the session would be).
    const session = JSON.parse('{"user":"eve","__proto__":{"admin":true},"cookie":{"maxAge":60000}}') as SessionData;
    await s.set("proto", session);
    const read = (await s.get("proto")) as SessionData;
    expect(read.admin).toBeUndefined();
    expect(Object.hasOwn(read, "__proto__")).toBe(true);
    expect(JSON.stringify(read)).toBe(JSON.stringify(session));
    // Saved back unchanged, it is a renewal (the read digest survived), not a rewrite.
    const { executed } = await countCommands(server, () => s.set("proto", read));
    expect(executed.set ?? 0).toBe(0);
    expect(executed.pexpire).toBe(1);
  });

  it("Dates and other toJSON values: a session read back and saved unchanged is a renewal, a changed one a write", async () => {
    const s = sessionApi(new RedisSessionStore(redis, { prefix }));
    await s.set("dates", { at: new Date(0), nested: { d: new Date(1) }, u: undefined, cookie: { maxAge: 60_000 } });
    const read = (await s.get("dates")) as SessionData;
    expect(read.at).toBe(new Date(0).toISOString());
    const same = await countCommands(server, () => s.set("dates", { ...read }));
    expect(same.executed.set ?? 0).toBe(0);
    const changed = await countCommands(server, () => s.set("dates", { ...read, at: new Date(2) }));
    expect(changed.executed.set).toBe(1);
  });

  it("two replicas: saves (changed, unchanged, touches) racing destroy never bring a session back", async () => {
    const a = sessionApi(new RedisSessionStore(redis, { prefix }));
    const other = connect(server.url);
    try {
      const b = sessionApi(new RedisSessionStore(other, { prefix }));
      for (let round = 0; round < 30; round++) {
        const sid = `storm-${round}`;
        await a.set(sid, { n: 0, cookie: { maxAge: 60_000 } });
        const readA = (await a.get(sid)) as SessionData;
        const readB = (await b.get(sid)) as SessionData;
        if (round % 3 === 0) await redis.del(`${prefix}:sess:{${sid}}`); // gone meanwhile: unchanged saves restore
        const ops: Array<() => Promise<void>> = [
          () => a.set(sid, readA),
          () => b.set(sid, readB),
          () => a.set(sid, { ...readA, n: 1 }),
          () => b.set(sid, { ...readB, n: 2 }),
          () => a.touch(sid, readA),
          () => b.touch(sid, { ...readB, cookie: { maxAge: 120_000 } }),
        ];
        const destroyer = round % 2 === 0 ? a : b;
        const destroyed = destroyer.destroy(sid);
        const saves = ops.map((op, i) => (i % 2 === round % 2 ? op() : Promise.resolve().then(op)));
        await Promise.all([destroyed, ...saves]);
        // A save issued before the destroy may have landed first, but the destroy deletes it; nothing after it counts.
        await Promise.all(ops.map((op) => op()));
        expect(await a.get(sid)).toBeNull();
        expect(await b.get(sid)).toBeNull();
      }
    } finally {
      other.disconnect();
    }
  });
});

describe("RedisSessionStore on Redis Cluster with odd ids", () => {
  it("ids spread over the masters are listed once each and destroyed for good", async () => {
    // all() and clear() walk with SCAN, an ACL extra: the cluster's unrestricted user.
    const cluster = connect(inject("coordisAdminClusterUrl"));
    try {
      const p = `${prefix}-cl`;
      const store = new RedisSessionStore(cluster, { prefix: p });
      const s = sessionApi(store);
      const ids = Array.from({ length: 40 }, (_, i) => ["*", "a:gone", "ü", "[x]", " "][i % 5] + String(i));
      await Promise.all(ids.map((id, i) => s.set(id, { i, cookie: { maxAge: 60_000 } })));
      await Promise.all(ids.filter((_, i) => i % 4 === 0).map((id) => s.destroy(id)));
      const kept = ids.filter((_, i) => i % 4 !== 0);
      const all = await new Promise<Array<SessionData & { id: string }>>((resolve, reject) =>
        store.all((err, list) => (err ? reject(err) : resolve(list ?? []))),
      );
      expect(all.map((x) => x.id).sort()).toEqual([...kept].sort());
      await new Promise<void>((resolve, reject) => store.clear((err) => (err ? reject(err) : resolve())));
      await Promise.all(ids.map((id, i) => s.set(id, { i, again: true })));
      for (const id of ids) expect(await s.get(id)).toBeNull();
    } finally {
      cluster.disconnect();
    }
  });
});

describe("RedisSessionStore across a Redis outage and restart", () => {
  it("killed: every call calls back once with RedisUnavailableError; restarted empty: scripts reload, logout sticks", async () => {
    const server = await startRedis();
    const redis = connect(server.url, { commandTimeoutMs: 300 });
    redis.on("error", () => {});
    try {
      const store = new RedisSessionStore(redis, { prefix });
      const s = sessionApi(store);
      await s.set("o-1", { user: "ada", cookie: { maxAge: 60_000 } });
      await s.destroy("o-0");
      await s.touch("o-1", { user: "ada", cookie: { maxAge: 60_000 } });
      const read = (await s.get("o-1")) as SessionData;
      await server.kill();
      const calls: Record<string, unknown[]> = { get: [], set: [], touch: [], destroy: [] };
      const cb =
        (name: string) =>
        (err: unknown): void => {
          (calls[name] as unknown[]).push(err);
        };
      store.get("o-1", cb("get"));
      store.set("o-1", { ...read, n: 1 } as SessionData, cb("set"));
      store.touch("o-1", read, cb("touch"));
      store.destroy("o-1", cb("destroy"));
      await waitUntil("every call to call back", () => Object.values(calls).every((c) => c.length > 0), 5_000);
      for (const [name, errs] of Object.entries(calls)) {
        expect(errs, name).toHaveLength(1);
        expect(errs[0], name).toBeInstanceOf(RedisUnavailableError);
        expect(errs[0], name).toBeInstanceOf(CoordisError);
      }
      await server.restart(); // no persistence: sessions, tombstones and the script cache are gone
      await waitUntil("the client to reconnect", async () => (await redis.ping().catch(() => "")) === "PONG", 5_000);
      // The read from before the restart, saved unchanged: its key is gone, so it is written again (documented).
      await s.set("o-1", read);
      expect(await s.get("o-1")).toMatchObject({ user: "ada" });
      await s.destroy("o-1");
      await s.set("o-1", read);
      await s.set("o-1", { ...read, n: 2 });
      await s.touch("o-1", read);
      expect(await s.get("o-1")).toBeNull();
      expect(Object.values(calls).every((c) => c.length === 1)).toBe(true);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
