import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Mutex, runOncePerTick } from "@coordis/lock";
import {
  type RedisCluster,
  type RedisServer,
  startRedisCluster,
  testPrefix,
  tryWaitUntil,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("lock-phantom");

/**
 * A call that timed out has an unknown outcome, and the lock undoes it (releases the grant it may have got). On a
 * Cluster, a call must then never be sent again behind the caller's back: it could take effect after the undo and
 * leave a lock held by a token nobody holds (or a tick "running" forever).
 */
describe("no phantom lock on a Redis Cluster after a call timed out", () => {
  let cluster: RedisCluster;
  const opened: RedisClient[] = [];
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    for (const c of opened) c.disconnect();
    await cluster.stop();
  });

  const client = (options: Parameters<typeof connect>[1]) => {
    const c = connect(cluster.adminUrl, options);
    c.on("error", () => {});
    opened.push(c);
    return c;
  };
  /** The node serving `key`'s slot, an unrestricted connection to it, and the slot. */
  const ownerOf = async (admin: RedisClient, key: string) => {
    const slot = Number(await admin.call("CLUSTER", "KEYSLOT", key));
    const ranges = (await admin.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, string]]>;
    const range = ranges.find(([from, to]) => from <= slot && slot <= to);
    const node = cluster.nodes.find((n) => n.port === range?.[2][1]) as RedisServer;
    const conn = connect(node.adminUrl);
    opened.push(conn);
    return { node, conn, slot, range: range as [number, number, [string, number, string]] };
  };

  it("a call refused with CLUSTERDOWN fails at once and is not sent again once the cluster is back", async () => {
    const admin = client({});
    const redis = client({ commandTimeoutMs: 100 });
    for (const kind of ["mutex", "tick"] as const) {
      const name = `down-${kind}`;
      const key = kind === "mutex" ? `${prefix}:lock:{${name}}` : `${prefix}:tick:{${name}}:t:1`;
      const mutex = new Mutex(redis, name, { prefix, ttlMs: 60_000 });
      // Scripts loaded on this client. Right after the previous round gave the slot back, its first calls may still
      // meet the client refreshing its slot map, which a 100 ms timeout does not always cover on a loaded machine:
      // tried until one goes through (this is set-up, not what is tested).
      await waitUntil(
        "the scripts loaded",
        () =>
          mutex.acquire({ waitMs: 0 }).then(
            (lease) => lease.release().then(() => true),
            () => false,
          ),
        10_000,
      );
      const { conn, slot, range } = await ownerOf(admin, key);
      // Another slot of the same node taken away: the cluster no longer covers every slot and answers CLUSTERDOWN.
      const other = range[0] === slot ? range[0] + 1 : range[0];
      await conn.call("CLUSTER", "DELSLOTS", other);
      let restored = false;
      try {
        await tryWaitUntil(
          async () => String(await conn.call("CLUSTER", "INFO")).includes("cluster_state:fail"),
          5_000,
        );
        const attempt =
          kind === "mutex"
            ? mutex.tryAcquire()
            : runOncePerTick(redis, name, 1, async () => {}, { prefix, ttlMs: 60_000 });
        // Refused at once with Redis' reason, not kept in ioredis' queue until the command timeout (from where it
        // would be sent again every 100 ms, racing the undo, once the timeout had told the caller it failed).
        const err = await attempt.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RedisUnavailableError);
        expect(String((err as Error).message)).toMatch(/CLUSTERDOWN/);
        await conn.call("CLUSTER", "ADDSLOTS", other);
        restored = true;
        await cluster.waitReady();
        // ioredis would send the refused call again every 100 ms until the cluster answers: within this window.
        const phantom = await tryWaitUntil(async () => (await admin.exists(key)) === 1, 1_000);
        expect(phantom, `${kind}: a call sent again after it timed out took effect`).toBe(false);
      } finally {
        if (!restored) await conn.call("CLUSTER", "ADDSLOTS", other);
        await cluster.waitReady();
      }
      // Free again (checked on a client with the default timeout: the tight one above is for the phantom window).
      if (kind === "mutex") {
        const lease = await new Mutex(admin, name, { prefix, ttlMs: 60_000 }).tryAcquire();
        expect(lease).not.toBeNull();
        await lease?.release();
      } else {
        let ran = 0;
        const outcome = await runOncePerTick(admin, name, 1, async () => void ran++, { prefix, ttlMs: 60_000 });
        expect(outcome).toMatchObject({ ran: true });
        expect(ran).toBe(1);
      }
    }
  }, 60_000);

  it("a durable acquire redirected past its deadline is not sent again after it gave up", async () => {
    const admin = client({});
    // Deadline: the 100 ms command timeout + the 50 ms wait + Coordis' margin.
    const redis = client({ commandTimeoutMs: 100 });
    const name = "moved";
    const key = `${prefix}:lock:{${name}}`;
    const durability = { replicas: 0, aof: "if-supported" as const, timeoutMs: 50 };
    // Not used before: its slot holds no key yet, so it can be handed to another node.
    const mutex = new Mutex(redis, name, { prefix, ttlMs: 60_000, durability });
    const { node: owner, conn, slot } = await ownerOf(admin, key);
    const ids = new Map<number, string>();
    for (const n of cluster.nodes) {
      const c = connect(n.adminUrl);
      opened.push(c);
      ids.set(n.port, String(await c.call("CLUSTER", "MYID")));
    }
    const target = cluster.nodes.find((n) => n.port !== owner.port) as RedisServer;
    // Only the owner hands the slot over: it answers MOVED to the target, while the others (and the slot map they
    // give) still name the owner, so the call goes back and forth until Coordis gives up.
    await conn.call("CLUSTER", "SETSLOT", slot, "NODE", ids.get(target.port) as string);
    try {
      await expect(mutex.tryAcquire()).rejects.toBeInstanceOf(RedisUnavailableError);
      // Now every node agrees on the target: a redirection still being followed would land there and take the lock.
      for (const n of cluster.nodes) {
        if (n.port === owner.port) continue;
        const c = connect(n.adminUrl);
        opened.push(c);
        await c.call("CLUSTER", "SETSLOT", slot, "NODE", ids.get(target.port) as string);
      }
      const targetConn = connect(target.adminUrl);
      opened.push(targetConn);
      const phantom = await tryWaitUntil(async () => (await targetConn.exists(key)) === 1, 1_500);
      expect(phantom, "the acquire was sent again after it gave up and took the lock").toBe(false);
    } finally {
      // The slot goes back to its owner on every node (emptied first, should a phantom have written to it).
      const targetConn = connect(target.adminUrl);
      opened.push(targetConn);
      await targetConn.del(key, `${key}:fence`).catch(() => 0);
      for (const n of cluster.nodes) {
        const c = connect(n.adminUrl);
        opened.push(c);
        await c.call("CLUSTER", "SETSLOT", slot, "NODE", ids.get(owner.port) as string);
      }
      await cluster.waitReady();
    }
  }, 60_000);
});
