import { slotOf } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
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

describe("sharded PubSub when a node holding none of its subscriptions restarts", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("reports no loss: no 'subscriber-disconnected' without its 'resubscribed', and messages keep coming", async () => {
    // Unrestricted client: the restart must not depend on ACL details.
    const client = cluster.adminClient() as Cluster;
    client.on("error", () => {});
    // The PubSub's own cluster connection, a duplicate of the client, kept here to make sure it is connected to
    // every node, as a long-running one is (its slot map refreshes read from any node).
    let own: Cluster | undefined;
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (...args: Parameters<Cluster["duplicate"]>) => {
      own = duplicate(...args);
      return own;
    };
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer });
    try {
      const got: number[] = [];
      await bus.subscribe<number>("kept", (m) => {
        got.push(m);
      });
      if (own === undefined) throw new Error("the subscriber connection was not opened");
      const pool = own;
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
});
