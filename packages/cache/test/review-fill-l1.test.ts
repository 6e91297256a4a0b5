import { connect, type RedisClient } from "@coordis/core";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache: the replica that writes a load back", () => {
  const clients: RedisClient[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("does not keep in L1 an older value one of its own reads found before the write-back landed", async () => {
    const namespace = "review-fill-l1";
    const entryKey = `${prefix}:cache:{${namespace}:k}`;
    const tagKey = `${prefix}:cache-tag:{${namespace}:u}`;
    const redis = connect(inject("coordisRedisUrl"));
    const other = connect(inject("coordisRedisUrl"));
    const admin = connect(inject("coordisAdminRedisUrl"));
    clients.push(redis, other, admin);
    // The read's second round trip (the entry's tag version) waits for the gate: the write-back lands meanwhile.
    let gate!: () => void;
    const opened = new Promise<void>((r) => (gate = r));
    let held!: () => void;
    const holding = new Promise<void>((r) => (held = r));
    let hold = false;
    const get = redis.get.bind(redis);
    (redis as { get: unknown }).get = (key: string) => {
      if (!hold || key !== tagKey) return get(key);
      held();
      return opened.then(() => get(key));
    };
    const rec = recordObserver();
    const options = { namespace, prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    const replica = new Cache(redis, { ...options, l1: { ttlMs: 600_000 }, observer: rec });
    // The writer reads Redis (no L1): a replica holding the evicted entry in L1 is not told of a load that fills
    // a key Redis had no entry for (it serves its copy for at most l1.ttlMs, as after any eviction).
    const writer = new Cache(other, { ...options, l1: false });
    try {
      await Promise.all([replica.ready(), writer.ready()]);
      await writer.set("k", "old", { tags: ["u"] });
      await waitUntil("the replica to hear the set", () => rec.events.some((e) => e.type === "invalidation"), 5_000);
      hold = true;
      const read = replica.get("k"); // finds "old" in Redis, then reads its tag's version
      await holding;
      // Redis evicts the entry (allkeys-lru): no invalidation. The replica's next getOrSet loads and writes back.
      expect(await admin.del(entryKey)).toBe(1);
      expect(await replica.getOrSet("k", () => "new")).toBe("new");
      expect(await admin.hget(entryKey, "v")).toBe('"new"');
      gate();
      expect(await read).toBe("old"); // read before the write-back: its answer stands, but must not enter L1
      expect(await writer.get("k")).toBe("new");
      expect(await replica.get("k")).toBe("new");
    } finally {
      gate();
      await Promise.all([replica.close(), writer.close()]);
    }
  });
});
