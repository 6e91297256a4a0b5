import { connect, type RedisClient } from "@coordis/core";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { afterAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();

describe("Cache on a replica cut off without a word (silent partition, not yet noticed)", () => {
  const redis = proxiedServer();
  const clients: RedisClient[] = [];
  const client = (url: string) => {
    const c = connect(url, { commandTimeoutMs: 300 });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  afterAll(async () => {
    for (const c of clients) c.disconnect();
  });

  it("serves no L1 entry older than l1.ttlMs: a change made elsewhere meanwhile is never hidden by it", async () => {
    // Long freshness and stale window, short L1 lifetime: l1.ttlMs is the only bound on an invalidation lost without
    // a sign, and B's subscriber cannot notice a silent partition before its heartbeat (seconds).
    const options = { namespace: "partition", prefix, ttlMs: 600_000, staleMs: 600_000, checkEvictionPolicy: false };
    const rec = recordObserver();
    const a = new Cache(client(redis.server.url), options);
    const b = new Cache(client(redis.proxy.url), { ...options, l1: { ttlMs: 300 }, observer: rec });
    try {
      await Promise.all([a.ready(), b.ready()]);
      await a.set("k", "old");
      await a.set("g", "old");
      await waitUntil(
        "B's L1 to hold both",
        async () =>
          (await b.get("k")) === "old" &&
          tiers(rec).at(-1) === "l1/hit" &&
          (await b.getOrSet("g", () => "never")) === "old" &&
          tiers(rec).at(-1) === "l1/hit",
        2_000,
      );
      // B's copies were stored before now; from now + l1.ttlMs on, L1 no longer serves them (B would ask Redis).
      const copied = performance.now();
      await waitUntil("B's L1 copies to be past l1.ttlMs", async () => performance.now() > copied + 350, 2_000);
      redis.proxy.blackhole();
      await a.set("k", "new");
      await a.set("g", "new");
      // B cannot reach Redis and has not noticed that its subscription is gone: it must not answer from a copy it got
      // more than l1.ttlMs ago (the new values were set after it).
      expect(await b.get("k")).not.toBe("old");
      expect(await b.getOrSet("g", () => "loaded")).toBe("loaded");
    } finally {
      redis.proxy.heal();
      await Promise.all([a.close(), b.close()]);
    }
  });
});
