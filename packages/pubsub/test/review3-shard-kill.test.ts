import { slotOf } from "@coordis/core";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  type RedisCluster,
  recordObserver,
  slotOwnerPort,
  startRedisCluster,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * One Cluster for the shard-loss tests: a shard subscriber connection killed by the server (CLIENT KILL TYPE pubsub on
 * the master of one channel) while a channel on another shard keeps publishing, then (last: it restarts a node) the
 * master of a channel down for a while.
 */
describe("sharded PubSub when one shard's subscriber connection or master goes away", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("the killed shard is resubscribed and reported; the other shard's channel keeps every message", async () => {
    const client = cluster.adminClient() as Cluster;
    client.on("error", () => {});
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer, heartbeatMs: 500 });
    const resubscribed: ResubscribedInfo[] = [];
    bus.on("resubscribed", (info) => void resubscribed.push(info));
    try {
      const portOf = (channel: string) => slotOwnerPort(client, slotOf(bus.redisChannel(channel)));
      const killedPort = await portOf("killed");
      let other = "";
      for (let i = 0; other === ""; i++) if ((await portOf(`other-${i}`)) !== killedPort) other = `other-${i}`;
      const killedGot: number[] = [];
      const otherGot: number[] = [];
      await bus.subscribe<number>("killed", (m) => void killedGot.push(m));
      await bus.subscribe<number>(other, (m) => void otherGot.push(m));
      const owner = cluster.nodes.find((n) => n.port === killedPort);
      if (owner === undefined) throw new Error("no owner");
      const admin = owner.client();
      let seq = 0;
      const sent: number[] = [];
      let publishing = true;
      const publisher = (async () => {
        while (publishing) {
          const n = seq++;
          if ((await bus.publish(other, n)) === 1) sent.push(n);
        }
      })();
      await waitUntil("the other channel flows", () => otherGot.length >= 50);
      expect(await admin.call("CLIENT", "KILL", "TYPE", "pubsub")).toBeGreaterThanOrEqual(1);
      await waitUntil(
        "the killed channel delivers again",
        async () => {
          await bus.publish("killed", 1);
          return killedGot.includes(1);
        },
        { timeoutMs: 10_000 },
      );
      await waitUntil("resubscribed", () => resubscribed.length >= 1);
      const mark = seq;
      await waitUntil("the other channel flows on", () => otherGot.some((n) => n > mark + 50));
      publishing = false;
      await publisher;
      await waitUntil("the last message on the other channel", () => otherGot.at(-1) === sent.at(-1));
      admin.disconnect();
      const lost = sent.filter((n) => !otherGot.includes(n));
      const disconnects = observer.events.filter((e) => e.type === "subscriber-disconnected").length;
      expect(disconnects).toBeGreaterThanOrEqual(1);
      expect(resubscribed.length).toBe(disconnects);
      // Every message counted as received by the other shard arrived, in order.
      expect({
        lost: lost.length,
        ordered: otherGot.every((n, i) => i === 0 || n > (otherGot[i - 1] as number)),
      }).toEqual({
        lost: 0,
        ordered: true,
      });
    } finally {
      await bus.close();
      client.disconnect();
    }
  }, 60_000);
  it("a sharded channel left and subscribed again before the shard answered: the new handler gets every message", async () => {
    const client = cluster.adminClient() as Cluster;
    client.on("error", () => {});
    const bus = new PubSub(client, { prefix });
    try {
      const old: number[] = [];
      const fresh: number[] = [];
      const offOld = await bus.subscribe<number>("again", (m) => void old.push(m));
      await bus.publish("again", 0);
      await waitUntil("first message", () => old.length === 1);
      const [offFresh] = await Promise.all([bus.subscribe<number>("again", (m) => void fresh.push(m)), offOld()]);
      for (let i = 1; i <= 5; i++) expect(await bus.publish("again", i)).toBe(1);
      await waitUntil("the new handler got everything", () => fresh.length === 5);
      expect(old).toEqual([0]);
      expect(fresh).toEqual([1, 2, 3, 4, 5]);
      await offFresh();
      expect(await bus.publish("again", 6)).toBe(0);
    } finally {
      await bus.close();
      client.disconnect();
    }
  });

  it("the master of a channel down: no 'resubscribed' until the shard is back", async () => {
    const client = cluster.adminClient() as Cluster;
    client.on("error", () => {});
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer });
    const resubscribed: ResubscribedInfo[] = [];
    bus.on("resubscribed", (info) => void resubscribed.push(info));
    try {
      const got: number[] = [];
      await bus.subscribe<number>("down", (m) => void got.push(m));
      const port = await slotOwnerPort(client, slotOf(bus.redisChannel("down")));
      const owner = cluster.nodes.find((n) => n.port === port);
      if (owner === undefined) throw new Error(`no node listens on ${port}`);
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
