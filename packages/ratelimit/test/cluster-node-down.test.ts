import { connect, type RedisClient, slotOf } from "@coordis/core";
import { RateLimiter, type RedisErrorPolicy } from "@coordis/ratelimit";
import { type RedisCluster, type RedisServer, startRedisCluster } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";

// On a Cluster, "Redis is unavailable" is one node at a time: a master that cannot be reached must not hand the keys
// of the other masters, which still answer, to the failure policy for redisRetryMs.
describe("RateLimiter on a Cluster with one master unreachable", () => {
  let cluster: RedisCluster;
  let redis: RedisClient;
  beforeAll(async () => {
    // Without full coverage the other masters keep serving their slots while one is down.
    cluster = await startRedisCluster({ masters: 3, config: { "cluster-require-full-coverage": "no" } });
  });
  // A client per case: the limiters of one client share what they learnt of its nodes (a case's outage would be the
  // next case's too, for its redisRetryMs).
  beforeEach(async () => {
    redis = connect(cluster.url, { commandTimeoutMs: 500 });
    redis.on("error", () => {});
    await redis.ping();
  });
  afterEach(() => {
    redis.disconnect();
  });
  afterAll(async () => {
    await cluster.stop();
  });

  /** The node serving `key`'s slot, as the client's slot map says. */
  const nodeOf = (key: string): RedisServer => {
    const owner = (redis as { slots?: string[][] }).slots?.[slotOf(`{${key}}`)]?.[0];
    const node = cluster.nodes.find((n) => owner === `${n.host}:${n.port}`);
    if (node === undefined) throw new Error(`no node serves ${key} (${owner})`);
    return node;
  };

  const cases: Array<[string, RedisErrorPolicy, boolean]> = [
    ["fail-open", "fail-open", false],
    ["fail-closed, batched", "fail-closed", true],
    ["memory fallback", { fallback: "memory" }, false],
  ];
  it.each(cases)("%s: keys of the reachable masters are still decided by Redis", async (name, policy, batch) => {
    const prefix = `cnd-${cases.findIndex((c) => c[0] === name)}`;
    const rl = new RateLimiter(redis, {
      rules: [{ name: "r", limit: 5, windowMs: 600_000 }],
      prefix,
      onRedisError: policy,
      redisRetryMs: 600_000,
      batch,
    });
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    for (const d of await Promise.all(keys.map((k) => rl.consume(k)))) expect(d.reason).toBe("redis");
    const down = nodeOf("k0");
    const elsewhere = keys.filter((k) => nodeOf(k) !== down);
    expect(elsewhere.length).toBeGreaterThan(0);
    down.pause();
    try {
      const lost = await rl.consume("k0");
      expect(lost.reason).not.toBe("redis");
      for (const d of await Promise.all(elsewhere.map((k) => rl.consume(k)))) {
        expect(d).toMatchObject({ allowed: true, reason: "redis", remaining: 3 });
      }
      expect(await rl.peek(elsewhere[0] as string)).toMatchObject({ reason: "redis", remaining: 3 });
      // The unreachable master's keys stay with the policy for redisRetryMs, without another command timeout.
      expect((await rl.consume("k0")).reason).toBe(lost.reason);
    } finally {
      down.resume();
      await cluster.waitReady();
    }
  });
});
