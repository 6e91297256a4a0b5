import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache input checks", () => {
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
  });

  it("a tags array with holes is refused naming the hole, not stored under a tag called undefined", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    clients.push(redis);
    const cache = new Cache(redis, { namespace: "sparse-tags", prefix, ttlMs: 60_000, checkEvictionPolicy: false });
    caches.push(cache);
    await cache.ready();
    // biome-ignore lint/suspicious/noSparseArray: the bad input under test
    const holed: string[] = [, "a"] as unknown as string[];
    const cases: Array<[string, () => Promise<unknown>]> = [
      ["options.tags[0]", () => cache.set("k", "v", { tags: holed })],
      ["options.tags[1]", () => cache.set("k", "v", { tags: Object.assign(new Array<string>(2), { 0: "a" }) })],
      ["options.tags[0]", () => cache.getOrSet("k", () => "loaded", { tags: new Array<string>(1) })],
    ];
    for (const [argument, call] of cases) {
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, argument).toBeInstanceOf(InvalidArgumentError);
      expect(err, argument).toMatchObject({ argument });
    }
    // Nothing was stored or loaded.
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.stats().loads).toBe(0);
  });
});
