import { connect } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix("cache-refresh-slow");

// A hung background refresh is replaced once its fill lock has expired in Redis: the next stale read takes the lock
// and refreshes. The refresh's age was timed from the reply of the read that took its lock, so when that reply came
// late (a slow link, a busy event loop) the refresh looked younger here than its lock was in Redis: the next read took
// the expired lock, was told a refresh was still running, gave the lock back, and nothing refreshed the key.
describe("Cache background refresh after a slow reply", () => {
  const s = proxiedServer();

  it("a hung refresh whose lock reply came late is replaced once its lock has expired in Redis", async () => {
    const redis = connect(s.proxy.url, { commandTimeoutMs: 5_000 });
    const namespace = "slow-refresh";
    const entryKey = `${prefix}:cache:{${namespace}:hot}`;
    const cache = new Cache(redis, {
      namespace,
      prefix,
      ttlMs: 1,
      staleMs: 600_000,
      l1: false,
      lock: { ttlMs: 300 },
      checkEvictionPolicy: false,
    });
    let release: ((v: string) => void) | undefined;
    try {
      await cache.ready();
      await cache.set("hot", "v1");
      await waitUntil("the entry to go stale", async () => (await cache.get("hot")) === undefined, 2_000);
      let calls = 0;
      const loader = () => {
        calls++;
        if (calls === 1) return new Promise<string>((r) => (release = r)); // the first refresh hangs
        return "v2";
      };
      // The stale read that takes the lock answers 150 ms after Redis took it.
      s.proxy.setLatency(150);
      expect(await cache.getOrSet("hot", loader)).toBe("v1");
      s.proxy.setLatency(0);
      await waitUntil(
        "the hung refresh's lock to expire",
        async () => (await s.direct.exists(`${entryKey}:lock`)) === 0,
        { timeoutMs: 5_000, intervalMs: 5 },
      );
      expect(await cache.getOrSet("hot", loader)).toBe("v1");
      await waitUntil("the key to be refreshed", async () => (await s.direct.hget(entryKey, "v")) === '"v2"', 3_000);
      expect(calls).toBe(2);
    } finally {
      release?.("late");
      await cache.close();
      redis.disconnect();
    }
  });
});
