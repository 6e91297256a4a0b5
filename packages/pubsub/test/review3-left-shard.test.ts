import { once } from "node:events";
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

describe("sharded PubSub when a node whose channels were all left restarts", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("reports no loss: no 'subscriber-disconnected' or 'resubscribed', and messages keep coming", async () => {
    const client = cluster.adminClient() as Cluster;
    client.on("error", () => {});
    // The PubSub's own cluster connection (a duplicate of the client), to wait for ioredis' subscriber reset.
    let own: Cluster | undefined;
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (...args: Parameters<Cluster["duplicate"]>) => {
      own = duplicate(...args);
      return own;
    };
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer, heartbeatMs: 500 });
    const resubscribed: ResubscribedInfo[] = [];
    bus.on("resubscribed", (info) => void resubscribed.push(info));
    try {
      const kept = await slotOwnerPort(client, slotOf(bus.redisChannel("kept")));
      let gone = "";
      for (let i = 0; gone === ""; i++) {
        if ((await slotOwnerPort(client, slotOf(bus.redisChannel(`gone-${i}`)))) !== kept) gone = `gone-${i}`;
      }
      const got: number[] = [];
      const goneGot: number[] = [];
      await bus.subscribe<number>("kept", (m) => void got.push(m));
      const off = await bus.subscribe<number>(gone, (m) => void goneGot.push(m));
      await bus.publish(gone, 0);
      await waitUntil("the left channel worked", () => goneGot.length === 1);
      await off();
      if (own === undefined) throw new Error("the subscriber connection was not opened");
      // ioredis replaces the ended shard subscriber and reports its subscribers ready: any report comes before that.
      const reset = once(own, "subscribersReady");
      const port = await slotOwnerPort(client, slotOf(bus.redisChannel(gone)));
      const node = cluster.nodes.find((n) => n.port === port);
      if (node === undefined) throw new Error("no node");
      await node.restart();
      await cluster.waitReady();
      await reset;
      await waitUntil("a message after the restart", async () => {
        await bus.publish("kept", 1);
        return got.includes(1);
      });
      const lost = observer.events.filter((e) => e.type === "subscriber-disconnected").length;
      // Before the fix: one 'subscriber-disconnected' (the ended shard subscriber, which held nothing any more) and
      // one 'resubscribed': a false alarm telling the application it may have missed messages.
      expect({ lost, resubscribed: resubscribed.length }).toEqual({ lost: 0, resubscribed: 0 });
      expect(goneGot).toEqual([0]);
    } finally {
      await bus.close();
      client.disconnect();
    }
  }, 60_000);
});
