import { connect } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix("cache-abort-stale");

// A load whose every caller aborted before its loader started is dropped: no loader call, its fill lock given back.
// A stale read that took the lock after the abort still started a background refresh, and a miss whose callers all
// aborted while the versions of its tags were read (after the lock, before the loader) still called its loader.
describe("getOrSet aborted while its read is out", () => {
  const s = proxiedServer();

  it("a stale read that took the lock for a load dropped meanwhile gives the lock back, no refresh", async () => {
    const redis = connect(s.proxy.url, { commandTimeoutMs: 5_000 });
    const namespace = "abort-stale";
    const lockKey = `${prefix}:cache:{${namespace}:k}:lock`;
    const cache = new Cache(redis, { namespace, prefix, ttlMs: 1, staleMs: 600_000, l1: false });
    try {
      await cache.ready();
      await cache.set("k", "v1");
      await waitUntil("the entry to go stale", async () => (await cache.get("k")) === undefined, 2_000);
      let calls = 0;
      const controller = new AbortController();
      s.proxy.setLatency(200);
      const call = cache.getOrSet(
        "k",
        () => {
          calls++;
          return "v2";
        },
        { signal: controller.signal },
      );
      controller.abort();
      await expect(call).rejects.toMatchObject({ name: "AbortError" });
      // The read reached Redis and took the lock; its reply comes back after the abort.
      await waitUntil("the read to take the lock", async () => (await s.direct.exists(lockKey)) === 1, {
        timeoutMs: 2_000,
        intervalMs: 5,
      });
      s.proxy.setLatency(0);
      // Given back (or, on a refresh, released by its write, after its loader call).
      await waitUntil("the lock to go", async () => (await s.direct.exists(lockKey)) === 0, 3_000);
      expect(calls).toBe(0);
      expect(await cache.get("k")).toBeUndefined(); // still the stale v1: nothing refreshed it
    } finally {
      s.proxy.setLatency(0);
      await cache.close();
      redis.disconnect();
    }
  });

  it("a miss whose callers all aborted while its tag versions were read is dropped before its loader", async () => {
    const redis = connect(s.proxy.url, { commandTimeoutMs: 5_000 });
    const namespace = "abort-tags";
    const lockKey = `${prefix}:cache:{${namespace}:k}:lock`;
    const cache = new Cache(redis, { namespace, prefix, ttlMs: 60_000, l1: false });
    try {
      await cache.ready();
      let calls = 0;
      const loader = () => {
        calls++;
        return "v";
      };
      const controller = new AbortController();
      s.proxy.setLatency(200);
      const call = cache.getOrSet("k", loader, { tags: ["t"], signal: controller.signal });
      // The read took the lock; the version of tag t, read after it (before the loader), now exists in Redis and its
      // reply is on its way back.
      await waitUntil(
        "the tag version to be read",
        async () => (await s.direct.keys(`${prefix}:*{${namespace}:t}`)).length === 1,
        { timeoutMs: 2_000, intervalMs: 5 },
      );
      controller.abort();
      await expect(call).rejects.toMatchObject({ name: "AbortError" });
      s.proxy.setLatency(0);
      // Given back (or, when loaded, released by the write, after the loader call).
      await waitUntil("the lock to go", async () => (await s.direct.exists(lockKey)) === 0, 3_000);
      expect(calls).toBe(0);
      expect(await cache.get("k")).toBeUndefined();
      expect(await cache.getOrSet("k", loader, { tags: ["t"] })).toBe("v"); // the next call starts afresh
      expect(calls).toBe(1);
    } finally {
      s.proxy.setLatency(0);
      await cache.close();
      redis.disconnect();
    }
  });
});
