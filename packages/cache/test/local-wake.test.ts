import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

/** Lets pending I/O and promise callbacks run (setImmediate is left real while timers are faked). */
const turn = () => new Promise<void>((r) => setImmediate(r));

// A call waiting for another caller's load is woken by that caller's message, and by a set, delete or write-back of
// the key made by its own instance (whose messages it does not receive): not only by its polling timer. Timers are faked while it
// waits, so a call that is not woken never polls and stays pending.
describe("A call waiting for a load is woken by a change made in its own process", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  let ns = 0;
  async function make(namespace: string, lockTtlMs = 10_000) {
    const c = connect(server.url);
    c.on("error", () => {});
    clients.push(c);
    const cache = new Cache(c, { namespace, prefix, ttlMs: 60_000, lock: { waitMs: 60_000, ttlMs: lockTtlMs } });
    caches.push(cache);
    await cache.ready();
    return cache;
  }
  beforeAll(async () => {
    server = await startRedis();
  });
  afterEach(() => {
    vi.useRealTimers();
  });
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  for (const change of ["set", "delete"] as const) {
    it(`${change} of the key wakes a call of the same instance waiting for another replica's load`, async () => {
      const namespace = `w${++ns}`;
      const a = await make(namespace);
      const b = await make(namespace);
      const admin = server.adminClient();
      const entry = `${prefix}:cache:{${namespace}:k}`;
      let finish!: () => void;
      const gate = new Promise<void>((r) => (finish = r));
      let started!: () => void;
      const loading = new Promise<void>((r) => (started = r));
      const held = b.getOrSet("k", async () => {
        started();
        await gate;
        return "b's";
      });
      await loading;
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
      let settled = false;
      const waited = a
        .getOrSet("k", () => "a's")
        .finally(() => {
          settled = true;
        });
      while ((await admin.hget(entry, "q")) !== "1") await turn();
      expect(settled).toBe(false);
      if (change === "set") await a.set("k", "set");
      else await a.delete("k");
      // Woken, it reads again: the value set, or (deleted, the lock with it) it takes the lock and loads. Not woken,
      // it would wait for its next poll, which never comes: given up after a few hundred round trips to Redis.
      for (let i = 0; i < 300 && !settled; i++) await admin.ping();
      expect(settled).toBe(true);
      expect(await waited).toBe(change === "set" ? "set" : "a's");
      vi.useRealTimers();
      finish();
      await held;
    });
  }

  it("a write-back wakes a call of the same instance waiting for that load", async () => {
    const namespace = `w${++ns}`;
    const a = await make(namespace, 1_000);
    const b = await make(namespace, 1_000);
    const admin = server.adminClient();
    const entry = `${prefix}:cache:{${namespace}:k}`;
    // b takes the fill lock and hangs; a's first call waits for it, takes the expired lock over and loads.
    let release!: () => void;
    const hang = new Promise<void>((r) => (release = r));
    const hung = b.getOrSet("k", async () => {
      await hang;
      return "b's";
    });
    while ((await admin.exists(`${entry}:lock`)) === 0) await turn();
    const began = performance.now();
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    let started!: () => void;
    const loading = new Promise<void>((r) => (started = r));
    const first = a.getOrSet("k", async () => {
      started();
      await gate;
      return "a's";
    });
    await loading;
    // A call made lock.ttlMs after the first began does not join its load: it reads, finds the lock taken and waits.
    while (performance.now() - began < 1_000) await admin.ping();
    await admin.hdel(entry, "q"); // the first call's mark: the one awaited below is the second call's
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let settled = false;
    const second = a
      .getOrSet("k", () => "second")
      .finally(() => {
        settled = true;
      });
    while ((await admin.hget(entry, "q")) !== "1") await turn();
    finish();
    expect(await first).toBe("a's");
    for (let i = 0; i < 300 && !settled; i++) await admin.ping();
    expect(settled).toBe(true);
    expect(await second).toBe("a's");
    vi.useRealTimers();
    release();
    await hung;
  });
});
