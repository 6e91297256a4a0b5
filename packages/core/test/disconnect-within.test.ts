import { disconnectWithin } from "@coordis/core";
import { type RedisCluster, socketsOpenedBy, startRedisCluster, withDeadline } from "@coordis/testing";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("disconnectWithin on a Redis Cluster whose nodes are all unresponsive", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  // ioredis resets a Cluster's node pool and emits "end" at once; each node's socket closes later (its graceful close
  // gets no answer from a paused node, so it is destroyed after the node's disconnectTimeout).
  for (const { disconnectTimeout, bound } of [
    { disconnectTimeout: 300, bound: 2_000 }, // the nodes' own close timers end them within the bound
    { disconnectTimeout: 10_000, bound: 300 }, // the bound comes first: what is left is destroyed
  ]) {
    it(`resolves only once the socket of every node connection is closed (node disconnectTimeout ${disconnectTimeout} ms, bound ${bound} ms)`, async () => {
      let client: Cluster | undefined;
      const opened = await socketsOpenedBy(async () => {
        client = new Cluster(
          cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
          { redisOptions: { disconnectTimeout } },
        );
        client.on("error", () => {});
        await client.ping(); // ready: the pool knows every node
        await Promise.all(client.nodes("master").map((node) => node.ping()));
      });
      if (client === undefined) throw new Error("no client");
      expect(opened.filter((s) => !s.destroyed).length).toBeGreaterThanOrEqual(cluster.nodes.length);
      for (const node of cluster.nodes) node.pause();
      try {
        await withDeadline(disconnectWithin(client, bound), bound + 500, "disconnectWithin with every node paused");
        const open = opened.filter((s) => !s.destroyed).map((s) => `${s.remoteAddress}:${s.remotePort}`);
        expect(open).toEqual([]);
      } finally {
        for (const node of cluster.nodes) node.resume();
        await cluster.waitReady();
      }
    });
  }
});
