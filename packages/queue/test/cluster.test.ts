import { connect, type RedisClient, slotOf } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("queue");

describe("a partitioned queue on the suite's Redis Cluster", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisClusterUrl"));
    await redis.ping();
  });
  afterAll(() => redis.disconnect());

  it("partitions: 6 spread one queue over several slots; every job runs, results come back, no CROSSSLOT", async () => {
    const queue = new Queue<number, number>(redis, "orders", { prefix, partitions: 6 });
    const errors: Error[] = [];
    const observer = { onEvent: (e: { error?: Error }) => (e.error ? errors.push(e.error) : undefined) };
    const workers = [0, 1].map(
      () =>
        new Worker<number, number>(redis, "orders", async (job) => job.data * 2, {
          prefix,
          partitions: 6,
          concurrency: 20,
          observer,
        }),
    );
    try {
      const added = await queue.addMany(Array.from({ length: 300 }, (_, i) => ({ data: i, opts: { id: `o-${i}` } })));
      expect(added.every((a) => !a.duplicate)).toBe(true);
      const results = await Promise.all(added.map((a) => queue.result(a.id, { timeoutMs: 30_000 })));
      expect(results).toEqual(Array.from({ length: 300 }, (_, i) => i * 2));
      expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: 300 });
      await queue.schedule("nightly", { cron: "0 3 * * *", tz: "Europe/Paris" }, 0);
      expect(await queue.unschedule("nightly")).toBe(true);
      const slots = new Set([0, 1, 2, 3, 4, 5].map((i) => slotOf(`${prefix}:queue:{orders#${i}}:jobs`)));
      expect(slots.size).toBe(6);
      expect(errors.filter((e) => /CROSSSLOT/.test(e.message))).toEqual([]);
    } finally {
      await Promise.all(workers.map((w) => w.close({ timeoutMs: 1_000 })));
      await queue.close();
    }
  }, 60_000);
});
