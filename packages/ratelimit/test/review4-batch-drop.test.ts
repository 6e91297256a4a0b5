import { connect, type RedisClient } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { type FaultProxy, startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
const YEAR = 365 * 24 * 3_600_000;

/**
 * The connection drops while micro-batches have run on Redis and their replies are still on the way: their callers
 * get the failure policy's answer, nothing is sent again once the client is back (the units those batches took stay
 * taken, once), the policy's rejections are not kept by the deny cache, and Redis decides again, exactly.
 */
describe("micro-batches in flight when the connection drops", () => {
  let proxy: FaultProxy;
  let client: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    proxy = await startProxy({ target: inject("coordisRedisUrl") });
    client = connect(proxy.url, { commandTimeoutMs: 2_000 });
    client.on("error", () => {});
    admin = connect(inject("coordisRedisUrl"));
    await Promise.all([client.ping(), admin.ping()]);
  });
  afterAll(async () => {
    client.disconnect();
    admin.disconnect();
    await proxy.close();
  });

  for (const algorithm of ["fixed-window", "gcra"] as const) {
    it(`${algorithm}: the batches that ran count once, the others not at all; then Redis decides exactly`, async () => {
      const rules = [{ name: "x", limit: 60, windowMs: YEAR, algorithm }];
      const rl = new RateLimiter(client, {
        prefix,
        rules,
        batch: { maxSize: 8 },
        denyCache: true,
        onRedisError: "fail-closed",
        redisRetryMs: 0,
      });
      const inspect = new RateLimiter(admin, { prefix, rules });
      const key = `drop-${algorithm}`;
      const used = async () => 60 - (await inspect.peek(key)).remaining;

      proxy.setLatency(300);
      const first = Array.from({ length: 40 }, () => rl.consume(key));
      // the batches have run on Redis; their replies are held back by the latency: cut the connection then
      await waitUntil("a batch to have run on Redis", async () => (await used()) > 0, 5_000);
      proxy.dropConnections();
      proxy.setLatency(0);
      const decisions = await Promise.all(first);
      const taken = await used();
      const admitted = decisions.filter((d) => d.allowed && d.reason === "redis").length;
      expect(decisions.every((d) => d.reason === "redis" || d.reason === "fail-closed")).toBe(true);
      expect(decisions.some((d) => d.reason === "fail-closed")).toBe(true);
      expect(decisions.every((d) => d.allowed === (d.reason === "redis"))).toBe(true);
      // a batch either ran (its units taken once) or did not: never more than the calls not known to have failed
      expect(taken).toBeGreaterThanOrEqual(admitted);
      expect(taken).toBeLessThanOrEqual(40);
      expect(taken % 8 === 0 || taken === 40, `${taken} units taken: not whole batches`).toBe(true);

      // back: nothing is sent again (the units taken stay as they were), and Redis decides every call once one call
      // has found it back (the others wait for that answer under the policy, see the README's failure policy)
      await client.ping();
      expect(await used()).toBe(taken);
      const probe = await rl.consume(key);
      expect(probe).toMatchObject({ allowed: true, reason: "redis" });
      const rest = await Promise.all(Array.from({ length: 80 }, () => rl.consume(key)));
      const after = [probe, ...rest];
      expect(after.map((d) => d.reason).filter((r) => r !== "redis" && r !== "deny-cache")).toEqual([]);
      const more = after.filter((d) => d.allowed).length;
      expect(more).toBe(60 - taken);
      expect(await used()).toBe(60);
    });
  }
});
