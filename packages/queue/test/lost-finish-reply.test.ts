import type { OperationEvent, RedisClient } from "@coordis/core";
import { Queue, Worker } from "@coordis/queue";
import { type RedisServer, stallServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { queueScripts } from "../src/scripts.generated.js";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue-lost-finish");

describe("a completion whose reply is lost", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("is sent again and, refused because the first call recorded it, still counts as completed", async () => {
    // The worker's client gives up on a command after 500 ms.
    const redis: RedisClient = server.client({ commandTimeoutMs: 500 });
    const producer: RedisClient = server.client({ commandTimeoutMs: 10_000 });
    // MONITOR from a connection that is not ready yet can break ioredis' command queue ("Command queue state
    // error"): the connection answers first (as @coordis/testing's commandstats probe does).
    const source = server.client() as Redis;
    await source.ping();
    const monitor = await source.monitor();
    let finishCalls = 0; // EVALSHA of the finish script that Redis ran
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === "evalsha" && args[1] === queueScripts.finish.sha1) finishCalls++;
    });
    const processed: OperationEvent[] = [];
    const q = new Queue<string, string>(producer, "lost", { prefix });
    const release = gate();
    const started = gate();
    const worker = new Worker<string, string>(
      redis,
      "lost",
      async (job) => {
        if (job.id === "warm-up") return "warm";
        started.open();
        await release.promise;
        // Redis busy for 1.5 s from here (less than the 4 s lease): the finish sent as this handler returns is queued
        // behind the stall on the same connection; the client times it out after 500 ms and sends it again, while
        // Redis, once free, runs the first call (it records the completion) and then the repeat (refused: the
        // delivery's fence is spent).
        stallServer(redis, 1_500).catch(() => {});
        return `done ${job.id}`;
      },
      {
        prefix,
        leaseMs: 4_000,
        schedules: false,
        observer: { onOperation: (op) => void (op.op === "process" && processed.push(op)) },
      },
    );
    try {
      // A first job loads the finish script into the server's script cache: the stalled call below is an EVALSHA
      // that runs when Redis gets to it (a NOSCRIPT answer nobody waits for any more would not be followed by EVAL).
      await q.add("warm-up", { id: "warm-up" });
      expect(await q.result("warm-up", { timeoutMs: 5_000 })).toBe("warm");
      await waitUntil("Redis ran the warm-up's finish", () => finishCalls >= 1, 5_000);
      await q.add("a", { id: "a" });
      await started.promise;
      release.open();
      const before = finishCalls;
      await waitUntil("the completion was reported", () => processed.length === 2, 15_000);
      // The lost reply really made the worker send the completion again (MONITOR lines may trail the reply).
      await waitUntil("Redis ran the finish twice", () => finishCalls - before >= 2, 5_000);
      expect(processed.map((op) => op.outcome)).toEqual(["completed", "completed"]);
      // Each report names the job it ran, so a log can follow one job's deliveries.
      expect(processed.map((op) => op.attributes?.jobId)).toEqual(["warm-up", "a"]);
      expect(worker.stats()).toMatchObject({ completed: 2, refused: 0 });
      expect(await q.result("a", { timeoutMs: 5_000 })).toBe("done a");
    } finally {
      await worker.close({ timeoutMs: 2_000 });
      await q.close();
      monitor.disconnect();
      redis.disconnect();
      producer.disconnect();
    }
  }, 30_000);
});
