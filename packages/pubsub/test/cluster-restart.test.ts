import { connect, type RedisClient, slotOf } from "@coordis/core";
import { CLOSE_TIMEOUT_MS, PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  EventRecorder,
  type RedisCluster,
  recordObserver,
  slotOwnerPort,
  socketsOpenedBy,
  startRedisCluster,
  testPrefix,
  waitUntil,
  withDeadline,
} from "@coordis/testing";
import type { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startForgetfulProxy } from "./forgetful-proxy.js";

const prefix = testPrefix();

/**
 * Port of the node where `redisChannel` has a (classic) subscriber: ioredis chooses it. Each node is asked through a
 * connection of its own (a cluster client's pool may lack a node that restarted a moment ago).
 */
async function subscriberPort(nodeClients: ReadonlyMap<number, RedisClient>, redisChannel: string): Promise<number> {
  const ports: number[] = [];
  for (const [port, node] of nodeClients) {
    const [, count] = (await node.call("PUBSUB", "NUMSUB", redisChannel)) as [string, number];
    if (Number(count) > 0) ports.push(port);
  }
  expect(ports).toHaveLength(1);
  return ports[0] as number;
}

describe("PubSub on a Redis Cluster of its own when the node of a subscription restarts or goes silent", () => {
  let cluster: RedisCluster;
  let admin: Cluster;
  const clients: RedisClient[] = [];
  /** An unrestricted standalone client of each node (they reconnect by themselves after a restart), by port. */
  const nodeClients = new Map<number, RedisClient>();
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    admin = cluster.adminClient() as Cluster;
    await admin.ping();
    for (const node of cluster.nodes) {
      const c = node.adminClient();
      c.on("error", () => {});
      nodeClients.set(node.port, c);
    }
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await cluster?.stop();
  });

  for (const sharded of [true, false]) {
    it(`sharded: ${sharded}: the loss is reported, 'resubscribed' is emitted and messages arrive again`, async () => {
      // Unrestricted client: the restart must not depend on ACL details; what is tested is the reconnect.
      const client = cluster.adminClient();
      client.on("error", () => {});
      clients.push(client);
      const observer = recordObserver();
      const b = new PubSub(client, { prefix, sharded, observer });
      const resubscribed = new EventRecorder<ResubscribedInfo>();
      b.on("resubscribed", resubscribed.record);
      const got: number[] = [];
      const channel = `restart-${sharded}`;
      await b.subscribe<number>(channel, (m) => {
        got.push(m);
      });
      await b.publish(channel, 1); // on a broadcast cluster the count is the receiving node's only: not checked
      await waitUntil("the message before the restart", () => got.includes(1));
      const redisChannel = b.redisChannel(channel);
      const port = sharded
        ? await slotOwnerPort(admin, slotOf(redisChannel))
        : await subscriberPort(nodeClients, redisChannel);
      const node = cluster.nodes.find((n) => n.port === port);
      if (node === undefined) throw new Error(`no node on port ${port}`);

      await node.restart();
      await cluster.waitReady();
      const info = await resubscribed.waitFor(() => true, { what: "'resubscribed'", timeoutMs: 20_000 });
      expect(info).toMatchObject({ channels: 1, patterns: 0 });
      // Every loss reported is followed by its 'resubscribed' (ioredis may go through more than one subscriber
      // connection while the node comes back: sharded subscribers are replaced as the topology is refreshed).
      const lost = () => observer.events.filter((e) => e.type === "subscriber-disconnected").length;
      await waitUntil("as many resubscriptions as losses", () => lost() >= 1 && b.stats().resubscriptions === lost());
      await waitUntil(
        "a message after the restart",
        async () => {
          await b.publish(channel, 2).catch(() => 0);
          return got.includes(2);
        },
        20_000,
      );
      if (!sharded) expect(lost()).toBe(1); // one subscriber connection, replaced once
      await b.close();
    });
  }

  for (const sharded of [true, false]) {
    it(`sharded: ${sharded}: with every node unresponsive, close() resolves within its bound once every socket of the subscriber is closed`, async () => {
      const client = cluster.adminClient();
      client.on("error", () => {});
      clients.push(client);
      await client.ping();
      const b = new PubSub(client, { prefix, sharded });
      // Channels on several shards: one sharded subscriber per shard.
      const opened = await socketsOpenedBy(async () => {
        for (const channel of ["close-a", "close-b", "close-c", "close-d"]) await b.subscribe(channel, () => {});
      });
      expect(opened.filter((s) => !s.destroyed).length).toBeGreaterThan(0);
      for (const node of cluster.nodes) node.pause();
      try {
        await withDeadline(b.close(), CLOSE_TIMEOUT_MS + 500, "close() with every node paused");
        const open = opened.filter((s) => !s.destroyed).map((s) => `${s.remoteAddress}:${s.remotePort}`);
        expect(open).toEqual([]);
      } finally {
        for (const node of cluster.nodes) node.resume();
        await cluster.waitReady();
      }
    });
  }

  it("sharded: false: a subscribe while every node is unresponsive rejects after the client's command timeout", async () => {
    const client = connect(cluster.adminUrl, { commandTimeoutMs: 1_000 });
    client.on("error", () => {});
    clients.push(client);
    const b = new PubSub(client, { prefix, sharded: false });
    await b.subscribe("first", () => {});
    for (const node of cluster.nodes) node.pause();
    try {
      // Within the command timeout (with room), long before the heartbeat would give the connection up (10 s).
      const late = b.subscribe("late", () => {});
      await expect(withDeadline(late, 4_000, "subscribe with every node paused")).rejects.toMatchObject({
        code: "ERR_REDIS_UNAVAILABLE",
      });
    } finally {
      for (const node of cluster.nodes) node.resume();
      await cluster.waitReady();
      await b.close();
    }
  });

  // The two cases wait out the heartbeat (two beats, of 1 s: what is tested does not depend on the default) at the
  // same time: each has proxies and a channel of its own.
  const beat = 1_000;
  for (const sharded of [false, true]) {
    it.concurrent(`sharded: ${sharded}: a subscriber connection the network dropped silently (no FIN, no RST) is noticed, replaced and resubscribed`, async ({
      expect,
    }) => {
      // Every connection to a node goes through a proxy of its own (natMap maps the addresses the cluster announces).
      const proxies = await Promise.all(cluster.nodes.map((n) => startForgetfulProxy({ host: n.host, port: n.port })));
      try {
        const natMap = Object.fromEntries(
          cluster.nodes.map((n, i) => [`${n.host}:${n.port}`, { host: "127.0.0.1", port: proxies[i]?.port as number }]),
        );
        const client = connect(`redis+cluster://${proxies.map((p) => `127.0.0.1:${p.port}`).join(",")}`, {
          clusterOptions: { natMap },
        });
        client.on("error", () => {});
        clients.push(client);
        const observer = recordObserver();
        const b = new PubSub(client, { prefix, sharded, observer, heartbeatMs: beat });
        const resubscribed = new EventRecorder<ResubscribedInfo>();
        b.on("resubscribed", resubscribed.record);
        const got: number[] = [];
        const channel = `silent-${sharded}`;
        await b.subscribe<number>(channel, (m) => {
          got.push(m);
        });
        // Published straight to the cluster, not through the proxies.
        const publisher = new PubSub(cluster.adminClient(), { prefix, sharded });
        await waitUntil("the message before", async () => {
          await publisher.publish(channel, 1);
          return got.includes(1);
        });
        const port = sharded
          ? await slotOwnerPort(admin, slotOf(b.redisChannel(channel)))
          : await subscriberPort(nodeClients, b.redisChannel(channel));
        const proxy = proxies[cluster.nodes.findIndex((n) => n.port === port)];
        expect(proxy?.forget()).toBeGreaterThan(0);

        // Given up by the heartbeat of this PubSub within two of its beats (1 s for timers running late).
        const silent = await observer.waitForEvent(
          (e) => e.type === "connection-error" && /silent for/.test(String(e.error?.message)),
          { what: "the heartbeat giving the connection up", timeoutMs: 2 * beat + 1_000 },
        );
        expect(silent.error?.message).toContain(`silent for ${beat} ms`);
        const info = await resubscribed.waitFor(() => true, {
          what: "'resubscribed' after the silent loss",
          timeoutMs: 2 * beat + 5_000,
        });
        expect(info).toMatchObject({ channels: 1, patterns: 0 });
        const losses = observer.events.filter((e) => e.type === "subscriber-disconnected").length;
        // Broadcast: one subscriber connection, replaced once; sharded: ioredis may go through more than one.
        if (sharded) expect(losses).toBeGreaterThanOrEqual(1);
        else expect(losses).toBe(1);
        await waitUntil("a message after the resubscription", async () => {
          await publisher.publish(channel, 2);
          return got.includes(2);
        });
        await Promise.all([b.close(), publisher.close()]);
      } finally {
        await Promise.all(proxies.map((p) => p.close()));
      }
    });
  }
});
