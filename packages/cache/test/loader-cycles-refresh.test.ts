import { InvalidArgumentError } from "@coordis/core";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterEach, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix("cache-cycles-refresh");

// A stale read made by a loader starts a background refresh that nobody waits for, the loader included: the refresh's
// loader may getOrSet the key of that loader (it waits for a load that does not wait for it) without being refused.
describe("detectLoaderCycles and background refreshes", () => {
  const shared = sharedClients();
  const caches: Cache[] = [];
  afterEach(async () => {
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });

  it("a refresh started by a loader's stale read may getOrSet that loader's key", async () => {
    const rec = recordObserver();
    const cache = new Cache(shared.redis, {
      namespace: "cycles-refresh",
      prefix,
      ttlMs: 60_000,
      detectLoaderCycles: true,
      observer: rec,
    });
    caches.push(cache);
    await cache.ready();
    await cache.set("b", "b1", { ttlMs: 1, staleMs: 600_000 });
    await waitUntil("b to go stale", async () => (await cache.get("b")) === undefined, 2_000);
    let releaseA!: () => void;
    const aMayFinish = new Promise<void>((r) => (releaseA = r));
    let refreshStarted = false;
    const loadB = async () => {
      refreshStarted = true;
      return `${await cache.getOrSet("a", () => "unused")}+b2`;
    };
    const a = cache.getOrSet("a", async () => {
      // b is stale: answered at once, its refresh running in the background, which this loader does not wait for.
      const b = await cache.getOrSet("b", loadB, { ttlMs: 60_000 });
      await waitUntil("the refresh of b to start", () => refreshStarted, 2_000);
      await aMayFinish;
      return `a(${b})`;
    });
    await waitUntil("the refresh of b to start", () => refreshStarted, 2_000);
    releaseA();
    expect(await a).toBe("a(b1)");
    await waitUntil(
      "the refresh of b to settle",
      async () => (await cache.get("b")) !== undefined || rec.events.some((e) => e.type === "refresh-error"),
      5_000,
    );
    expect(rec.events.filter((e) => e.type === "refresh-error")).toEqual([]);
    expect(await cache.get("b")).toBe("a(b1)+b2");
  });

  it("a refresh whose loader calls getOrSet of its own key is refused, reported as a refresh-error", async () => {
    const rec = recordObserver();
    const cache = new Cache(shared.redis, {
      namespace: "cycles-refresh-own",
      prefix,
      ttlMs: 1,
      staleMs: 600_000,
      detectLoaderCycles: true,
      observer: rec,
    });
    caches.push(cache);
    await cache.ready();
    await cache.set("b", "b1");
    await waitUntil("b to go stale", async () => (await cache.get("b")) === undefined, 2_000);
    // Started from inside another key's loader: the refresh is its own load, and its own key is still refused.
    const a = await cache.getOrSet("a", async () => cache.getOrSet("b", () => cache.getOrSet("b", () => "inner")));
    expect(a).toBe("b1");
    await waitUntil("the refresh to fail", () => rec.events.some((e) => e.type === "refresh-error"), 5_000);
    const [failed] = rec.events.filter((e) => e.type === "refresh-error");
    expect(failed?.name).toBe("b");
    expect(failed?.error).toBeInstanceOf(InvalidArgumentError);
    expect(failed?.error?.message).toContain('the loader of "b" (cache "cycles-refresh-own") called getOrSet("b")');
    expect(await cache.getOrSet("b", () => "b2")).toBe("b1"); // still served stale
  });
});
