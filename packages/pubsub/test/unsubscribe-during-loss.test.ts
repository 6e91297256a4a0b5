import { aclRules, connect, type RedisClient } from "@coordis/core";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  EventRecorder,
  type RedisCluster,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  startRedisCluster,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** Subscribers of `redisChannel` over every node (a broadcast subscriber is on one node of ioredis' choice). */
async function subscribers(nodes: Iterable<RedisClient>, redisChannel: string): Promise<number> {
  let total = 0;
  for (const node of nodes) {
    const [, count] = (await node.call("PUBSUB", "NUMSUB", redisChannel)) as [string, number];
    total += Number(count);
  }
  return total;
}

describe("a channel left while the subscriber connection is lost is not subscribed again", () => {
  describe("standalone", () => {
    let server: RedisServer;
    let admin: RedisClient;
    beforeAll(async () => {
      server = await startRedis();
      admin = server.adminClient();
    });
    afterAll(async () => {
      await server.stop();
    });

    it("unsubscribe() during the loss: after the reconnect Redis has only the channels still subscribed", async () => {
      const proxy = await startProxy({ target: server });
      const client = server.client();
      const observer = recordObserver();
      const viaProxy = connect(proxy.url, { commandTimeoutMs: 500 });
      viaProxy.on("error", () => {});
      const bus = new PubSub(viaProxy, { prefix, observer });
      const resubscribed = new EventRecorder<ResubscribedInfo>();
      bus.on("resubscribed", resubscribed.record);
      try {
        const got: string[] = [];
        const leave = await bus.subscribe<string>("left", (m) => void got.push(`left:${m}`));
        await bus.subscribe<string>("kept", (m) => void got.push(`kept:${m}`));
        proxy.refuse();
        proxy.dropConnections();
        await observer.waitForEvent((e) => e.type === "subscriber-disconnected");
        await leave();
        await proxy.accept();
        await resubscribed.waitFor(() => true, { timeoutMs: 10_000 });
        await waitUntil("'kept' delivered again", async () => {
          await bus.publish("kept", "1");
          return got.includes("kept:1");
        });
        expect(await subscribers([admin], bus.redisChannel("left"))).toBe(0);
        expect(await client.publish(bus.redisChannel("left"), '"2"')).toBe(0);
        expect(got.filter((g) => g.startsWith("left:"))).toEqual([]);
      } finally {
        await bus.close();
        viaProxy.disconnect();
        await proxy.close();
      }
    });
  });

  describe("standalone, a resubscription Redis refuses (an ACL change)", () => {
    let server: RedisServer;
    let admin: RedisClient;
    beforeAll(async () => {
      server = await startRedis();
      admin = server.adminClient();
    });
    afterAll(async () => {
      await server.stop();
    });

    it("a channel left while the refused resubscription was out is not subscribed again name by name", async () => {
      const names = { keep: `${prefix}:ps:r-keep`, revoke: `${prefix}:ps:r-revoke`, gone: `${prefix}:ps:r-gone` };
      const user = `ps-left-${prefix.slice(-8)}`;
      await admin.call("ACL", "SETUSER", user, "reset", "on", ">pw", ...aclRules({ prefix }), "resetchannels");
      await admin.call("ACL", "SETUSER", user, `&${names.keep}`, `&${names.revoke}`, `&${names.gone}`);
      const client = connect(`redis://${user}:pw@${server.host}:${server.port}`) as Redis;
      client.on("error", () => {});
      // The PubSub's own subscriber connection, to act the moment it resubscribes.
      let own: { subscribe(...channels: string[]): Promise<unknown> } | undefined;
      const duplicate = client.duplicate.bind(client);
      client.duplicate = (...args: Parameters<Redis["duplicate"]>) => {
        const made = duplicate(...args);
        own = made;
        return made;
      };
      const observer = recordObserver();
      const bus = new PubSub(client, { prefix, observer });
      try {
        const got: string[] = [];
        await bus.subscribe<number>("r-keep", (m) => void got.push(`keep ${m}`));
        await bus.subscribe<number>("r-revoke", () => {});
        const leave = await bus.subscribe<number>("r-gone", (m) => void got.push(`gone ${m}`));
        if (own === undefined) throw new Error("the subscriber connection was not opened");
        const conn = own;
        const subscribe = conn.subscribe.bind(conn);
        let left: Promise<void> | undefined;
        conn.subscribe = (...channels: string[]) => {
          const sent = subscribe(...channels);
          // The resubscription of every channel is out: the application leaves one now.
          if (channels.length > 1 && left === undefined) left = leave();
          return sent;
        };
        // Redis ends the connection of a subscriber that loses a channel; the resubscription is refused for it.
        await admin.call("ACL", "SETUSER", user, "resetchannels", `&${names.keep}`, `&${names.gone}`);
        await waitUntil("the refusal reported", () =>
          observer.events.some((e) => e.type === "resubscribe-failed" && e.attributes?.channel === names.revoke),
        );
        await waitUntil("the kept channel restored", () => observer.events.some((e) => e.type === "resubscribed"));
        await left;
        expect(await admin.publish(names.keep, "1")).toBe(1);
        await waitUntil("the kept channel delivers", () => got.includes("keep 1"));
        // The channel left is not subscribed again by the name-by-name resubscription.
        expect(await subscribers([admin], names.gone)).toBe(0);
        expect(observer.events.find((e) => e.type === "resubscribed")?.attributes).toMatchObject({ channels: 1 });
      } finally {
        await bus.close();
        client.disconnect();
        await admin.call("ACL", "DELUSER", user);
      }
    });
  });

  describe("Cluster, broadcast subscriber", () => {
    let cluster: RedisCluster;
    const nodeClients: RedisClient[] = [];
    beforeAll(async () => {
      cluster = await startRedisCluster({ masters: 3 });
      for (const node of cluster.nodes) {
        const c = node.adminClient();
        c.on("error", () => {});
        nodeClients.push(c);
      }
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });

    it("unsubscribe() while the subscriber's node restarts: the new subscriber connection does not carry it", async () => {
      const client = cluster.adminClient();
      client.on("error", () => {});
      const observer = recordObserver();
      const bus = new PubSub(client, { prefix, sharded: false, observer });
      const resubscribed = new EventRecorder<ResubscribedInfo>();
      bus.on("resubscribed", resubscribed.record);
      try {
        const got: string[] = [];
        const leave = await bus.subscribe<string>("c-left", (m) => void got.push(`left:${m}`));
        await bus.subscribe<string>("c-kept", (m) => void got.push(`kept:${m}`));
        const left = bus.redisChannel("c-left");
        await waitUntil("the subscription on a node", async () => (await subscribers(nodeClients, left)) === 1);
        let port = 0;
        for (const [i, node] of nodeClients.entries()) {
          const [, count] = (await node.call("PUBSUB", "NUMSUB", left)) as [string, number];
          if (Number(count) > 0) port = cluster.nodes[i]?.port as number;
        }
        const node = cluster.nodes.find((n) => n.port === port);
        if (node === undefined) throw new Error("no subscriber node");
        const restarting = node.restart();
        await observer.waitForEvent((e) => e.type === "subscriber-disconnected", { timeoutMs: 10_000 });
        await leave();
        await restarting;
        await cluster.waitReady();
        await resubscribed.waitFor(() => true, { timeoutMs: 20_000 });
        await waitUntil(
          "'c-kept' delivered again",
          async () => {
            await bus.publish("c-kept", "1").catch(() => 0);
            return got.includes("kept:1");
          },
          20_000,
        );
        expect(await subscribers(nodeClients, left)).toBe(0);
        expect(await subscribers(nodeClients, bus.redisChannel("c-kept"))).toBe(1);
      } finally {
        await bus.close();
        client.disconnect();
      }
    });

    it("an UNSUBSCRIBE the frozen node never answered: ioredis' new subscriber connection subscribes it again, and it is dropped", async () => {
      const client = cluster.adminClient();
      client.on("error", () => {});
      const bus = new PubSub(client, { prefix, sharded: false });
      const resubscribed = new EventRecorder<ResubscribedInfo>();
      bus.on("resubscribed", resubscribed.record);
      try {
        const got: string[] = [];
        const leave = await bus.subscribe<string>("f-left", () => {});
        await bus.subscribe<string>("f-kept", (m) => void got.push(`kept:${m}`));
        const left = bus.redisChannel("f-left");
        await waitUntil("the subscription on a node", async () => (await subscribers(nodeClients, left)) === 1);
        let port = 0;
        for (const [i, node] of nodeClients.entries()) {
          const [, count] = (await node.call("PUBSUB", "NUMSUB", left)) as [string, number];
          if (Number(count) > 0) port = cluster.nodes[i]?.port as number;
        }
        const node = cluster.nodes.find((n) => n.port === port);
        if (node === undefined) throw new Error("no subscriber node");
        // The node freezes: the UNSUBSCRIBE goes out on the subscriber connection and is never answered, so ioredis
        // still counts the channel among that connection's subscriptions when the node dies and it opens another.
        node.pause();
        const leaving = leave().catch(() => {});
        await node.restart();
        await leaving;
        await cluster.waitReady();
        await resubscribed.waitFor(() => true, { timeoutMs: 20_000 });
        await waitUntil(
          "'f-kept' delivered again",
          async () => {
            await bus.publish("f-kept", "1").catch(() => 0);
            return got.includes("kept:1");
          },
          20_000,
        );
        expect(await subscribers(nodeClients, left)).toBe(0);
        expect(await subscribers(nodeClients, bus.redisChannel("f-kept"))).toBe(1);
      } finally {
        await bus.close();
        client.disconnect();
      }
    });
  });
});
