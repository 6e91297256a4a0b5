import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache with a loader that never returns", () => {
  const clients: RedisClient[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("calls made after lock.ttlMs do not join its load: the next one loads again, on a lone replica too", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    const raw = connect(inject("coordisRedisUrl"));
    clients.push(redis, raw);
    const cache = new Cache(redis, { namespace: "hung", prefix, ttlMs: 60_000, lock: { ttlMs: 300 } });
    let release!: (v: string) => void;
    try {
      await cache.ready();
      let entered!: () => void;
      const loading = new Promise<void>((r) => (entered = r));
      const hung = cache.getOrSet("k", () => {
        entered();
        return new Promise<string>((r) => (release = r));
      });
      await loading;
      // Within lock.ttlMs a call shares the load in progress.
      let joinedLoader = false;
      const joined = cache.getOrSet("k", () => {
        joinedLoader = true;
        return "never";
      });
      // Its fill lock is gone after lock.ttlMs: the load is given up for everybody else, as on other replicas.
      await waitUntil(
        "the fill lock to expire",
        async () => (await raw.exists(`${prefix}:cache:{hung:k}:lock`)) === 0,
        5_000,
      );
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        cache.getOrSet("k", () => "second"),
        new Promise((r) => {
          timer = setTimeout(() => r("still waiting for the hung loader after 5 s"), 5_000);
        }),
      ]);
      clearTimeout(timer);
      expect(outcome).toBe("second");
      expect(await cache.getOrSet("k", () => "never")).toBe("second");
      // The hung load ends: its callers get its result, which is not written over the newer value.
      release("first");
      expect(await hung).toBe("first");
      expect(await joined).toBe("first");
      expect(joinedLoader).toBe(false);
      expect(await raw.hget(`${prefix}:cache:{hung:k}`, "v")).toBe('"second"');
    } finally {
      release?.("first");
      await cache.close();
    }
  });
});
