import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache background refresh whose loader never returns", () => {
  const clients: RedisClient[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("a stale read made lock.ttlMs after a hung refresh started refreshes the key again, on a lone replica too", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    const admin = connect(inject("coordisAdminRedisUrl"));
    clients.push(redis, admin);
    const namespace = "review-refresh";
    const entryKey = `${prefix}:cache:{${namespace}:hot}`;
    // Stale for a long time (bentocache's "grace" of hours), so only a refresh can bring the new value.
    const cache = new Cache(redis, {
      namespace,
      prefix,
      ttlMs: 1,
      staleMs: 600_000,
      l1: false,
      lock: { ttlMs: 300 },
      checkEvictionPolicy: false,
    });
    let release!: (v: string) => void;
    try {
      await cache.ready();
      await cache.set("hot", "v1");
      await waitUntil("the entry to go stale", async () => (await cache.get("hot")) === undefined, 2_000);
      let entered!: () => void;
      const hung = new Promise<void>((r) => (entered = r));
      let calls = 0;
      // The first refresh hangs (a database call lost in a network blip); the database answers again afterwards.
      const loader = () => {
        calls++;
        if (calls === 1) {
          entered();
          return new Promise<string>((r) => (release = r));
        }
        return "v2";
      };
      expect(await cache.getOrSet("hot", loader)).toBe("v1");
      await hung;
      await waitUntil(
        "the hung refresh's lock to expire",
        async () => (await admin.exists(`${entryKey}:lock`)) === 0,
        5_000,
      );
      // The next stale read takes the lock: it refreshes the key, instead of waiting for a load that cannot write.
      expect(await cache.getOrSet("hot", loader)).toBe("v1");
      await waitUntil("the key to be refreshed", async () => (await admin.hget(entryKey, "v")) === '"v2"', 3_000);
      expect(calls).toBe(2);
      // The hung load ends at last: its result is not written over the newer one (its lock expired long ago).
      release("late");
      await waitUntil("the lock to be free", async () => (await admin.exists(`${entryKey}:lock`)) === 0, 2_000);
      expect(await admin.hget(entryKey, "v")).toBe('"v2"');
    } finally {
      release?.("late");
      await cache.close();
    }
  });
});
