/**
 * A job id a producer chooses (an idempotency key from a client) cannot spell the id
 * of a schedule's run, `{schedule:<name>}<run ms>`. Such an add succeeded and the schedule's run then finds its
 * id taken: the run's own job was never made (the pre-added job, with the client's data, stood in for it).
 */
import { InvalidArgumentError, type RedisClient } from "@coordis/core";
import { Queue } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

describe("Queue: schedule run ids are reserved", () => {
  const shared = sharedClients();

  it("add() and addMany() refuse an id of the schedule-run form", async () => {
    const redis: RedisClient = shared.redis;
    const queue = new Queue<string>(redis, "sched-id", { prefix: testPrefix(), batch: false });
    try {
      await queue.schedule("digest", { everyMs: 60_000 }, "the real digest");
      const runId = `{schedule:digest}${Math.ceil(Date.now() / 60_000) * 60_000}`;
      await expect(queue.add("client data", { id: runId })).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(queue.addMany([{ data: "x", opts: { id: runId } }])).rejects.toMatchObject({
        argument: "items[0].opts.id",
      });
      expect(await queue.get(runId)).toBeNull();
    } finally {
      await queue.close();
    }
  });
});
