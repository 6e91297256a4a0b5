import { connect, coreScripts, type RedisClient, runScript, slotOf } from "@coordis/core";
import { type RedisCluster, startRedisCluster, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * A master that freezes (SIGSTOP, a hung host) or is cut off answers nothing and closes no connection: the cluster
 * promotes its replica, and a client must find the new master by itself (a MOVED never comes, a closed connection
 * neither). It used to keep sending those slots' calls to the frozen master, each failing by its timeout, for as long
 * as the master stayed frozen.
 */
describe("a connect() Cluster client when a master freezes and its replica takes over (cluster of its own)", () => {
  let cluster: RedisCluster;
  let redis: RedisClient;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    redis = connect(cluster.url, { commandTimeoutMs: 500 });
  }, 120_000);
  afterAll(async () => {
    redis.disconnect();
    for (const node of cluster.nodes) if (node.paused) node.resume();
    await cluster.stop();
  });

  it("calls on the frozen master's slots succeed again once its replica is promoted, with the master still frozen", async () => {
    const key = `${prefix}:{frozen}:v`;
    expect(await runScript(redis, coreScripts.probe, [key, `${prefix}:{frozen}:c`], ["before", 60_000])).toBeDefined();
    const admin = cluster.adminClient();
    const slot = slotOf(key);
    const ranges = (await admin.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
    admin.disconnect();
    const masterPort = ranges.find(([from, to]) => from <= slot && slot <= to)?.[2][1];
    const master = cluster.nodes.find((n) => n.port === masterPort);
    if (master === undefined) throw new Error(`no master for slot ${slot}`);
    const masterAdmin = master.adminClient();
    const replicaPort = Number(/slave0:[^\r\n]*port=(\d+)/.exec(await masterAdmin.info("replication"))?.[1]);
    masterAdmin.disconnect();
    const replica = cluster.nodes.find((n) => n.port === replicaPort);
    if (replica === undefined) throw new Error(`no replica of ${masterPort}`);
    const replicaAdmin = replica.adminClient();
    try {
      master.pause();
      await waitUntil(
        "the replica to be promoted",
        async () => (await replicaAdmin.info("replication")).includes("role:master"),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      // The master stays frozen: only a fresh look at the slot map finds the promoted replica.
      await waitUntil(
        "a call on the frozen master's slot to succeed",
        async () => {
          try {
            await runScript(redis, coreScripts.probe, [key, `${prefix}:{frozen}:c`], ["after", 60_000]);
            return true;
          } catch {
            return false;
          }
        },
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      expect(await replicaAdmin.get(key)).toBe("after");
    } finally {
      replicaAdmin.disconnect();
      master.resume();
    }
  }, 90_000);
});
