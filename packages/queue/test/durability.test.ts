import { connect, DurabilityError, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { Queue } from "@coordis/queue";
import { countCommands, type RedisServer, startRedis, testPrefix, waitForReplicas } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("queue");

/** The queue's `durability` option on a primary of our own with one replica. */
describe("Queue durability setting (a primary with one replica)", () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let redis: RedisClient;
  let replicaAdmin: RedisClient;
  beforeAll(async () => {
    // The replica syncs at once, not after the 5 s a diskless sync waits by default for more replicas.
    primary = await startRedis({ leastPrivilege: true, config: { "repl-diskless-sync-delay": 0 } });
    replica = await startRedis({ extraArgs: ["--replicaof", primary.host, String(primary.port)] });
    replicaAdmin = connect(replica.adminUrl);
    await waitForReplicas(primary, [replica]);
    redis = primary.client({ commandTimeoutMs: 2_000 });
    await redis.ping();
  }, 60_000);
  afterAll(async () => {
    redis.disconnect();
    replicaAdmin.disconnect();
    await replica.stop();
    await primary.stop();
  });

  it("rejects a bad durability option with InvalidArgumentError naming the key, before anything is sent", () => {
    const bad: Array<[unknown, string]> = [
      [null, "options.durability"],
      [{ replicas: 1, timeoutMs: 100, extra: 1 }, "options.durability.extra"],
      [{ timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: 1 }, "options.durability.timeoutMs"],
      [{ replicas: 0, timeoutMs: 100 }, "options.durability.replicas"],
      // Not below the client's commandTimeout (2 000 ms): ioredis would cut the wait short.
      [{ replicas: 1, timeoutMs: 2_000 }, "options.durability.timeoutMs"],
    ];
    for (const [durability, argument] of bad) {
      let error: unknown;
      try {
        new Queue(redis, "bad", { prefix, durability } as never);
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(durability)).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(argument);
    }
  });

  it("an add confirmed by the replica resolves: the script and WAIT right behind it, the job on the replica", async () => {
    const queue = new Queue<number>(redis, "durable", { prefix, durability: { replicas: 1, timeoutMs: 1_000 } });
    try {
      await queue.add(0, { id: "warm" });
      const counted = await countCommands(primary, () => queue.add(1, { id: "a" }));
      expect(counted.result).toEqual({ id: "a", duplicate: false });
      expect(counted.sent).toEqual({ evalsha: 1, wait: 1 });
      // Acknowledged by the replica before the add resolved: it is there now, no waiting.
      expect(await replicaAdmin.hexists(`${prefix}:queue:{durable}:jobs`, "j:a")).toBe(1);
      // addMany: every script call is confirmed the same way.
      const many = await queue.addMany([
        { data: 2, opts: { id: "b" } },
        { data: 3, opts: { id: "a" } },
      ]);
      expect(many).toEqual([
        { id: "b", duplicate: false },
        { id: "a", duplicate: true },
      ]);
    } finally {
      await queue.close();
    }
  });

  it("an add not confirmed in time rejects with DurabilityError; the job may exist, and adding it again with its id is safe", async () => {
    // Two replicas asked for, one exists: the wait times out.
    const strict = new Queue<number>(redis, "strict", { prefix, durability: { replicas: 2, timeoutMs: 150 } });
    const relaxed = new Queue<number>(redis, "strict", { prefix, durability: { replicas: 1, timeoutMs: 1_000 } });
    try {
      const error = await strict.add(1, { id: "x" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DurabilityError);
      expect(error).toMatchObject({
        code: "ERR_DURABILITY",
        operation: "queue/add",
        reason: "timeout",
        replicasRequired: 2,
        replicasAcknowledged: 1,
      });
      // Added on the primary all the same: the retry with the same id creates nothing and says so.
      expect(await relaxed.add(1, { id: "x" })).toEqual({ id: "x", duplicate: true });
      expect(await relaxed.get("x")).toMatchObject({ state: "waiting", data: 1 });
      await expect(strict.addMany([{ data: 2, opts: { id: "y" } }])).rejects.toBeInstanceOf(DurabilityError);
      expect(await relaxed.add(2, { id: "y" })).toEqual({ id: "y", duplicate: true });
    } finally {
      await strict.close();
      await relaxed.close();
    }
  });
});
