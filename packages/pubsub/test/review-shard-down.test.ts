import { slotOf } from "@coordis/core";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import { type RedisCluster, recordObserver, startRedisCluster, testPrefix, waitUntil } from "@coordis/testing";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("sharded PubSub while the master of its channel is down", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("emits no 'resubscribed' until the shard is back", async () => {
    const client = cluster.adminClient() as Cluster;
    client.on("error", () => {});
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer });
    const resubscribed: ResubscribedInfo[] = [];
    bus.on("resubscribed", (info) => void resubscribed.push(info));
    try {
      const got: number[] = [];
      await bus.subscribe<number>("down", (m) => void got.push(m));
      const slot = slotOf(bus.redisChannel("down"));
      const ranges = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, string]]>;
      const range = ranges.find(([from, to]) => from <= slot && slot <= to);
      const owner = cluster.nodes.find((n) => n.port === range?.[2][1]);
      if (owner === undefined) throw new Error(`no node serves slot ${slot}`);
      await owner.kill();
      // ioredis tries to reach the dead master again and again (each try a 'connection-error'): none of them can
      // restore anything.
      await waitUntil(
        "ioredis tried the dead master several times",
        () => observer.events.filter((e) => e.type === "connection-error").length >= 5,
        { timeoutMs: 10_000 },
      );
      // Before the fix: a 'resubscribed' after every failed try (hundreds within seconds, downtimeMs of a few ms)
      // while the only master of the channel was dead.
      expect(resubscribed).toEqual([]);
      expect(observer.events.filter((e) => e.type === "subscriber-disconnected")).toHaveLength(1);
      await owner.restart();
      await cluster.waitReady();
      await waitUntil(
        "a message after the master came back",
        async () => {
          await bus.publish("down", 1).catch(() => 0);
          return got.includes(1);
        },
        { timeoutMs: 20_000 },
      );
      await waitUntil("resubscribed", () => resubscribed.length >= 1);
      expect(resubscribed[0]?.channels).toBe(1);
    } finally {
      await bus.close();
      client.disconnect();
    }
  }, 90_000);
});
