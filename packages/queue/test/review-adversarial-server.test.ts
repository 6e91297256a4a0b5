import type { OperationEvent, RedisClient } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { type RedisServer, stallServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-adversarial-server");

describe("the queue's promises under server faults (adversarial review)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    // appendfsync always: what Redis acknowledged is on disk, so a SIGKILL of Redis loses none of it.
    server = await startRedis({ appendOnly: true, config: { appendfsync: "always" } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a failure whose reply is lost is sent again and counted once: the job's next delivery is attempt 2", async () => {
    // The worker's client gives up on a command after 500 ms.
    const redis: RedisClient = server.client({ commandTimeoutMs: 500 });
    const producer: RedisClient = server.client({ commandTimeoutMs: 10_000 });
    const q = new Queue<string, string>(producer, "lost-failure", { prefix });
    const outcomes: string[] = [];
    const attempts: number[] = [];
    const worker = new Worker<string, string>(
      redis,
      "lost-failure",
      async (job) => {
        if (job.id === "warm-up") return "warm";
        attempts.push(job.attempt);
        if (job.attempt > 1) return `done #${job.attempt}`;
        // Redis busy for 1.5 s from here (less than the 4 s lease): the failure sent as this handler throws waits
        // behind the stall; the client times it out and sends it again, while Redis runs the first call (it
        // schedules the retry) and then the repeat (refused: the delivery's fence is spent).
        stallServer(redis, 1_500).catch(() => {});
        throw new Error("first attempt fails");
      },
      {
        prefix,
        leaseMs: 4_000,
        schedules: false,
        observer: {
          onOperation: (op: OperationEvent) => void (op.op === "process" && outcomes.push(op.outcome)),
        },
      },
    );
    try {
      // Loads the finish script into the server's script cache: the stalled call is an EVALSHA Redis runs later.
      await q.add("warm-up", { id: "warm-up" });
      expect(await q.result("warm-up", { timeoutMs: 5_000 })).toBe("warm");
      // The retry waits out the stall: a fetch that times out behind it (and runs later) finds nothing to hand out.
      await q.add("a", { id: "a", attempts: 3, backoff: { type: "fixed", delayMs: 2_000 } });
      expect(await q.result("a", { timeoutMs: 15_000 })).toBe("done #2");
      expect(attempts).toEqual([1, 2]);
      expect(await q.get("a")).toMatchObject({ state: "completed", attempts: 2, error: "Error: first attempt fails" });
      await waitUntil("every delivery is reported", () => outcomes.length === 3, 5_000);
      // The failure's first call took effect; the call sent again is refused, and counted so (README).
      expect(outcomes).toEqual(["completed", "refused", "completed"]);
    } finally {
      await worker.close({ timeoutMs: 2_000 });
      await q.close();
      redis.disconnect();
      producer.disconnect();
    }
  }, 30_000);

  it("a running job's delivery survives a Redis restart (AOF) shorter than its lease: it completes once, attempt 1", async () => {
    const redis: RedisClient = server.client();
    const producer: RedisClient = server.client();
    const q = new Queue<string, string>(producer, "restart-mid-run", { prefix });
    const started = gate();
    const finish = gate();
    const runs: string[] = [];
    const outcomes: string[] = [];
    const worker = new Worker<string, string>(
      redis,
      "restart-mid-run",
      async (job) => {
        runs.push(`${job.id}#${job.attempt}@${job.fence}`);
        started.open();
        await finish.promise;
        if (job.signal.aborted) throw new Error("signal aborted");
        return `done ${job.id}`;
      },
      {
        prefix,
        leaseMs: 6_000,
        schedules: false,
        observer: { onOperation: (op: OperationEvent) => void (op.op === "process" && outcomes.push(op.outcome)) },
      },
    );
    try {
      await q.add("a", { id: "a", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
      await started.promise;
      await server.restart({ graceful: false });
      // The worker renews its lease on the restarted server before the handler returns.
      const renewedFrom = Number((await producer.zscore(`${prefix}:queue:{restart-mid-run}:leases`, "a")) ?? 0);
      await waitUntil(
        "the lease is renewed after the restart",
        async () => Number((await producer.zscore(`${prefix}:queue:{restart-mid-run}:leases`, "a")) ?? 0) > renewedFrom,
        10_000,
      );
      finish.open();
      expect(await q.result("a", { timeoutMs: 10_000 })).toBe("done a");
      expect(runs).toHaveLength(1);
      expect(await q.get("a")).toMatchObject({ state: "completed", attempts: 1 });
      await waitUntil("the delivery is reported", () => outcomes.length === 1, 5_000);
      expect(outcomes).toEqual(["completed"]);
    } finally {
      await worker.close({ timeoutMs: 1_000 });
      await q.close();
      redis.disconnect();
      producer.disconnect();
    }
  }, 60_000);
});
