import { setTimeout as sleep } from "node:timers/promises";
import { connect, DurabilityError, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type RedisSentinelSetup, startRedisSentinel, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * Event-log appends across a Sentinel failover: master, one replica replicating through a fault proxy, Sentinel
 * (quorum 1, down-after 1 s); clients connect through Sentinel as the least-privilege user.
 */
describe("EventLog durability setting and failover", () => {
  let setup: RedisSentinelSetup;
  let redis: RedisClient;
  beforeAll(async () => {
    setup = await startRedisSentinel({
      replicas: 1,
      proxiedReplication: true,
      downAfterMs: 1_000,
      leastPrivilege: true,
    });
    redis = connect(setup.url, { commandTimeoutMs: 2_000 });
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await setup.stop();
  });

  it("rejects bad durability options, and durability with batch", () => {
    const make = (options: object) => () => new EventLog(redis, "bad", { prefix, ...options });
    for (const [options, argument] of [
      [{ durability: { replicas: 1, timeoutMs: 100, x: 1 } }, "options.durability.x"],
      [{ durability: { replicas: 1 } }, "options.durability.timeoutMs"],
      [{ durability: { replicas: 1, timeoutMs: 5_000 } }, "options.durability.timeoutMs"],
      [{ durability: { replicas: 1, timeoutMs: 100 }, batch: true }, "options.durability"],
    ] as const) {
      expect(make(options)).toThrow(InvalidArgumentError);
      try {
        make(options)();
      } catch (err) {
        expect((err as InvalidArgumentError).argument).toBe(argument);
      }
    }
  });

  it("a durable append survives the failover; an acknowledged plain append the replica never got is lost", async () => {
    const durable = new EventLog(redis, "audit", { prefix, durability: { replicas: 1, timeoutMs: 300 } });
    const plain = new EventLog(redis, "audit", { prefix });
    const kept = await durable.append({ n: 1 }, { idempotencyKey: "k1" });

    // Replication stops reaching the replica: a durable append is refused, a plain one is acknowledged.
    setup.links[0]?.blackhole();
    const refused = await durable.append({ n: 2 }, { idempotencyKey: "k2" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DurabilityError);
    expect(refused).toMatchObject({ operation: "eventlog/append", reason: "timeout", replicasAcknowledged: 0 });
    const acknowledged = await plain.append({ n: 3 }, { idempotencyKey: "k3" });
    expect((await plain.read()).entries.map((e) => e.id)).toContain(acknowledged.id);

    await setup.master.kill();
    await setup.waitForFailover(setup.master);
    let ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      try {
        ids = (await plain.read()).entries.map((e) => e.id);
        break;
      } catch {
        await sleep(100); // the client reconnects to the promoted replica
      }
    }
    expect(ids).toEqual([kept.id]);
    // The lost append's idempotency key is forgotten too: a retry appends it again.
    expect((await plain.append({ n: 3 }, { idempotencyKey: "k3" })).duplicate).toBe(false);
    expect((await plain.append({ n: 1 }, { idempotencyKey: "k1" })).duplicate).toBe(true);
  }, 120_000);
});
