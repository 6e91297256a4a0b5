import { once } from "node:events";
import { slotOf } from "@coordis/core";
import { PubSub, type PubSubOptions, type ResubscribedInfo } from "@coordis/pubsub";
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
 * A PubSub on an unrestricted client of `cluster` (a restart must not depend on ACL details), and a getter of its own
 * cluster connection (a duplicate of the client, opened by the first subscribe).
 */
function busOn(cluster: RedisCluster, options: PubSubOptions) {
  const client = cluster.adminClient() as Cluster;
  client.on("error", () => {});
  let own: Cluster | undefined;
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (...args: Parameters<Cluster["duplicate"]>) => {
    own = duplicate(...args);
    return own;
  };
  const bus = new PubSub(client, { prefix, ...options });
  const ownConnection = () => {
    if (own === undefined) throw new Error("the subscriber connection was not opened");
    return own;
  };
  return { client, bus, ownConnection };
}

describe("sharded PubSub when a node holding none of its subscriptions restarts (never held, or all left)", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("reports no loss: no 'subscriber-disconnected' without its 'resubscribed', and messages keep coming", async () => {
    // The PubSub's own cluster connection is kept to make sure it is connected to every node, as a long-running one
    // is (its slot map refreshes read from any node).
    const observer = recordObserver();
    const { client, bus, ownConnection } = busOn(cluster, { observer });
    try {
      const got: number[] = [];
      await bus.subscribe<number>("kept", (m) => {
        got.push(m);
      });
      const pool = ownConnection();
      await Promise.all(pool.nodes("master").map((node) => node.ping()));
      const owner = await slotOwnerPort(client, slotOf(bus.redisChannel("kept")));
      const other = cluster.nodes.find((n) => n.port !== owner);
      if (other === undefined) throw new Error("no other node");
      // The other node leaves the subscriber's connection pool (its connection ends) and comes back.
      const left = new Promise<void>((resolve) => pool.once("-node", () => resolve()));
      await other.restart();
      await left;
      await cluster.waitReady();
      await waitUntil("a message after the restart", async () => {
        await bus.publish("kept", 1);
        return got.includes(1);
      });
      const lost = observer.events.filter((e) => e.type === "subscriber-disconnected");
      // Before the fix: one 'subscriber-disconnected' (ioredis' "-node" of the other node's pool connection) and no
      // 'resubscribed' ever after it (nothing of the subscriber was lost, so ioredis reports no subscribers ready).
      expect(lost).toEqual([]);
      expect(bus.stats().resubscriptions).toBe(0);
    } finally {
      await bus.close();
      client.disconnect();
    }
  });

  it("one whose channels were all left: no 'subscriber-disconnected' or 'resubscribed', and messages keep coming", async () => {
    const observer = recordObserver();
    const { client, bus, ownConnection } = busOn(cluster, { observer, heartbeatMs: 500 });
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
      // ioredis replaces the ended shard subscriber and reports its subscribers ready: any report comes before that.
      const reset = once(ownConnection(), "subscribersReady");
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
