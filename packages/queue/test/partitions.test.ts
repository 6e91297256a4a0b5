import { type CoordisEvent, connect, type RedisClient } from "@coordis/core";
import { PartitionsMismatchError, Queue, Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("queue");

describe("a queue's partition count is recorded on first use and checked by every Queue and Worker", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("a Queue or Worker given another count fails with PartitionsMismatchError instead of leaving jobs waiting", async () => {
    const name = "mismatch";
    const four = new Queue<number, number>(redis, name, { prefix, partitions: 4 });
    const one = new Queue<number, number>(redis, name, { prefix });
    const events: CoordisEvent[] = [];
    let wrong: Worker<number, number> | undefined;
    let right: Worker<number, number> | undefined;
    try {
      // The first to reach Redis records its count.
      const { id } = await four.add(7);
      wrong = new Worker<number, number>(redis, name, async (job) => job.data, {
        prefix,
        partitions: 2,
        schedules: false,
        observer: { onEvent: (e) => events.push(e) },
      });
      // The Queue of 1 partition would add to (and read) a partition no one else uses.
      const error = await one.add(8).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PartitionsMismatchError);
      expect(error).toMatchObject({ code: "ERR_QUEUE_PARTITIONS", queue: name, stored: 4, given: 1 });
      expect((error as Error).message).toContain("partitions: 4");
      expect((error as Error).message).toContain("partitions: 1");
      expect((error as Error).message).toContain(`${prefix}:queue:{${name}}:meta`);
      // Every operation answers the same, and nothing was added.
      await expect(one.addMany([{ data: 9 }])).rejects.toBeInstanceOf(PartitionsMismatchError);
      await expect(one.get(id)).rejects.toBeInstanceOf(PartitionsMismatchError);
      await expect(one.counts()).rejects.toBeInstanceOf(PartitionsMismatchError);
      expect((await four.counts()).waiting).toBe(1);

      // A Worker of another count reports it and fetches nothing.
      await expect(wrong.ready()).rejects.toMatchObject({ code: "ERR_QUEUE_PARTITIONS", stored: 4, given: 2 });
      expect(events.find((e) => e.type === "partitions-mismatch")?.error).toBeInstanceOf(PartitionsMismatchError);
      expect(wrong.stats()).toMatchObject({ running: 0, completed: 0 });
      expect(await four.get(id)).toMatchObject({ state: "waiting" });

      // The right count works: the job runs.
      right = new Worker<number, number>(redis, name, async (job) => job.data * 2, {
        prefix,
        partitions: 4,
        schedules: false,
      });
      await right.ready();
      expect(await four.result(id, { timeoutMs: 10_000 })).toBe(14);
      expect(wrong.stats().completed).toBe(0);
    } finally {
      await wrong?.close({ timeoutMs: 1_000 });
      await right?.close({ timeoutMs: 1_000 });
      await four.close();
      await one.close();
    }
  });

  it("the first client records its count: a Worker first, then a Queue of another count is refused", async () => {
    const name = "worker-first";
    const worker = new Worker<number, number>(redis, name, async (job) => job.data, { prefix, schedules: false });
    const queue = new Queue<number, number>(redis, name, { prefix, partitions: 3 });
    try {
      await worker.ready();
      await expect(queue.add(1)).rejects.toMatchObject({ code: "ERR_QUEUE_PARTITIONS", stored: 1, given: 3 });
      const same = new Queue<number, number>(redis, name, { prefix });
      const { id } = await same.add(5);
      expect(await same.result(id, { timeoutMs: 10_000 })).toBe(5);
      await same.close();
      await waitUntil("the worker to count its job", () => worker.stats().completed === 1, 10_000);
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await queue.close();
    }
  });
});
