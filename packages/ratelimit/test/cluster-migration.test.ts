import { connect, type RedisClient, slotOf } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { type RedisCluster, startRedisCluster, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * A reshard moves a slot's keys one MIGRATE at a time: meanwhile a script whose keys the migration has split between
 * the two nodes is refused (TRYAGAIN). A micro-batch holds calls on different keys of one slot, so it met that refusal
 * where the same calls unbatched follow ASK and are decided by Redis.
 */
describe("micro-batched consume on a Cluster slot being migrated (cluster of its own)", () => {
  let cluster: RedisCluster;
  let redis: RedisClient;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    redis = connect(cluster.url, { commandTimeoutMs: 2_000 });
  });
  afterAll(async () => {
    redis.disconnect();
    await cluster.stop();
  });

  it("each call of a batch whose keys the migration split is decided by Redis, exactly; the master is not taken for down", async () => {
    const keyOf = (k: string) => `${prefix}:rl:{${k}}`;
    // Two keys of one slot.
    const bySlot = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; pair === undefined; i++) {
      const k = `user:${i}`;
      const other = bySlot.get(slotOf(keyOf(k)));
      if (other !== undefined) pair = [other, k];
      else bySlot.set(slotOf(keyOf(k)), k);
    }
    const [moved, stays] = pair;
    const slot = slotOf(keyOf(moved));
    const rules = [{ name: "api", limit: 100, windowMs: 60_000 }];
    const plain = new RateLimiter(redis, { rules, prefix, onRedisError: "fail-open" });
    await plain.consume(moved);
    await plain.consume(stays);
    // The slot's master and another one; the first key goes over, the second is still on the source.
    const masters = await Promise.all(
      cluster.nodes.slice(0, 3).map(async (node) => {
        const admin = node.adminClient();
        return { node, admin, id: (await admin.call("CLUSTER", "MYID")) as string };
      }),
    );
    try {
      const ranges = (await masters[0]?.admin.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
      const ownerPort = ranges.find(([from, to]) => from <= slot && slot <= to)?.[2][1];
      const source = masters.find((m) => m.node.port === ownerPort);
      const target = masters.find((m) => m !== source);
      if (source === undefined || target === undefined) throw new Error(`no owner of slot ${slot}`);
      await target.admin.call("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id);
      await source.admin.call("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id);
      await source.admin.call("MIGRATE", target.node.host, target.node.port, keyOf(moved), 0, 5_000);
      // Another key of the same master, in a slot that is not migrating.
      let elsewhere = "";
      for (let i = 0; elsewhere === ""; i++) {
        const s = slotOf(keyOf(`other:${i}`));
        if (s !== slot && ranges.some(([from, to, [, port]]) => from <= s && s <= to && port === ownerPort)) {
          elsewhere = `other:${i}`;
        }
      }
      for (const onRedisError of ["fail-open", "throw"] as const) {
        const batched = new RateLimiter(redis, { rules, prefix, batch: true, onRedisError });
        const [a, b] = await Promise.all([batched.consume(moved), batched.consume(stays)]);
        expect([a.reason, b.reason], onRedisError).toEqual(["redis", "redis"]);
        expect([a.remaining, b.remaining], onRedisError).toEqual(onRedisError === "fail-open" ? [98, 98] : [97, 97]);
      }
      // The master of the slot answered: its other keys are still decided by Redis.
      expect((await plain.consume(elsewhere)).reason).toBe("redis");
      // The moved key was counted where it is now (the importing node serves it after ASKING).
      const [, [, onTarget]] = (await target.admin.pipeline().call("ASKING").get(keyOf(moved)).exec()) as [
        unknown,
        [unknown, string | null],
      ];
      expect(onTarget).toMatch(/^api\|fw=\d+:\d+:3$/);
    } finally {
      for (const m of masters) await m.admin.call("CLUSTER", "SETSLOT", slot, "STABLE").catch(() => {});
      for (const m of masters) m.admin.disconnect();
    }
  });
});
