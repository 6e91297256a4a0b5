import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers, writeUnannounced } from "./helpers.js";

const prefix = testPrefix();

describe("Cache across a Redis restart (data kept on disk)", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    server = await startRedis({ appendOnly: true, config: { appendfsync: "always" } });
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server.stop();
  });
  const client = () => {
    const c = connect(server.url, { commandTimeoutMs: 300 });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };

  it("an invalidation lost before the restart: once the replica's subscriber drops, it never serves the old value", async () => {
    const rec = recordObserver();
    const options = { namespace: "restart", prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    // B keeps what it reads in L1 for 10 minutes: only a detected gap can make it drop the old value.
    const b = new Cache(client(), { ...options, l1: { ttlMs: 600_000 }, observer: rec });
    // A writer whose invalidations never arrive.
    const silent = client();
    try {
      await b.ready();
      await writeUnannounced(silent, b, "k", "old");
      await waitUntil(
        "B's L1 to hold k",
        async () => (await b.get("k")) === "old" && tiers(rec).at(-1) === "l1/hit",
        2_000,
      );
      await writeUnannounced(silent, b, "k", "new");
      expect(await b.get("k")).toBe("old"); // lost without a sign: bounded by l1.ttlMs only (documented)
      const gaps = b.stats().gaps;
      await server.kill();
      await waitUntil("B to notice its lost subscriber", () => b.stats().gaps > gaps, 5_000);
      // Down, then back with the data: B never answers the old value again.
      const seen = new Set<unknown>();
      const poll = async () => {
        seen.add(await b.get("k"));
      };
      for (let i = 0; i < 5; i++) await poll();
      await server.restart();
      await waitUntil(
        "B to resubscribe and read the new value",
        async () => {
          await poll();
          return b.stats().busHealthy && (await b.get("k")) === "new";
        },
        10_000,
      );
      await waitUntil(
        "an L1 hit of the new value",
        async () => (await b.get("k")) === "new" && tiers(rec).at(-1) === "l1/hit",
        2_000,
      );
      for (let i = 0; i < 5; i++) await poll();
      expect(seen.has("old")).toBe(false);
      expect(seen.has("new")).toBe(true);
    } finally {
      await b.close();
    }
  });

  it("a set that timed out against a paused Redis and is applied once it resumes is invalidated everywhere", async () => {
    const options = { namespace: "paused", prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    const rec = recordObserver();
    const a = new Cache(client(), options);
    const b = new Cache(client(), { ...options, l1: { ttlMs: 600_000 }, observer: rec });
    const raw = client();
    try {
      await Promise.all([a.ready(), b.ready()]);
      await a.set("p", "old");
      await waitUntil(
        "B's L1 to hold p",
        async () => (await b.get("p")) === "old" && tiers(rec).at(-1) === "l1/hit",
        2_000,
      );
      server.pause();
      let failed: unknown;
      try {
        await a.set("p", "new");
      } catch (err) {
        failed = err;
      } finally {
        server.resume();
      }
      // The call failed, yet its write was on its way: Redis applies it when it resumes...
      expect(failed).toBeInstanceOf(RedisUnavailableError);
      await waitUntil(
        "the late write",
        async () => (await raw.hget(`${prefix}:cache:{paused:p}`, "v")) === '"new"',
        5_000,
      );
      // ...and its invalidation follows it: B does not keep the old value for its 10-minute L1 lifetime.
      await waitUntil("B to drop the old value", async () => (await b.get("p")) === "new", 2_000);
    } finally {
      if (server.paused) server.resume();
      await Promise.all([a.close(), b.close()]);
    }
  });
});
