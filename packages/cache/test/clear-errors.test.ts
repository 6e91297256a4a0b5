import { CoordisError, connect, type RedisClient } from "@coordis/core";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache.clear() when Redis refuses its deletes", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    // Granted SCAN (the session store's all() and length() need it) but not UNLINK: clear() cannot delete.
    server = await startRedis({ leastPrivilege: { extraRules: ["+scan"] } });
    redis = connect(server.url);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("rejects with Redis' error instead of resolving with every entry still there", async () => {
    const cache = new Cache(redis, { namespace: "clear-refused", prefix, ttlMs: 60_000, checkEvictionPolicy: false });
    try {
      await cache.ready();
      await cache.set("k", "v");
      const err = await cache.clear().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CoordisError);
      expect((err as Error).message).toMatch(/NOPERM/);
      expect(await cache.get("k")).toBe("v");
    } finally {
      await cache.close();
    }
  });
});
