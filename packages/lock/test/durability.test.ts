import { connect, DurabilityError, InvalidArgumentError, type RedisClient, serverAtLeast } from "@coordis/core";
import { Mutex, Redlock, Semaphore } from "@coordis/lock";
import {
  countCommands,
  type RedisCluster,
  type RedisServer,
  startRedis,
  startRedisCluster,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** The `durability` option on servers of our own without replicas (failover tests: failover.test.ts). */
describe("lock durability setting", () => {
  let servers: RedisServer[];
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    servers = await Promise.all([0, 1, 2].map(() => startRedis({ leastPrivilege: true })));
    const first = servers[0] as RedisServer;
    redis = first.client({ commandTimeoutMs: 2_000 });
    admin = first.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
    // Warm the script cache (so counts see EVALSHA, not a NOSCRIPT fallback) and the server-version check.
    const lease = await new Mutex(redis, "warm", { prefix }).acquire();
    await lease.extend();
    await lease.release();
    const permit = await new Semaphore(redis, "warm", { prefix, permits: 1 }).acquire();
    await permit.release();
    await serverAtLeast(redis, "7.2.0");
  });
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });

  it("a lease's extend(ttlMs) refuses a ttlMs not above durability.timeoutMs, as the constructor does, and keeps the lease", async () => {
    const durability = { replicas: 0, aof: "if-supported" as const, timeoutMs: 500 };
    const locks = [
      new Mutex(redis, "extend-floor", { prefix, ttlMs: 5_000, durability }),
      new Semaphore(redis, "extend-floor", { prefix, ttlMs: 5_000, permits: 1, durability }),
      new Redlock([redis], "extend-floor-rl", { prefix, ttlMs: 5_000, durability }),
    ];
    for (const lock of locks) {
      const lease = await lock.acquire();
      const error = await lease.extend(500).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe("ttlMs");
      expect(lease.signal.aborted).toBe(false);
      await lease.extend(501);
      expect(lease.remainingMs()).toBeLessThanOrEqual(501);
      expect(await lease.release()).toBe(true);
    }
  });

  it("rejects bad durability options with InvalidArgumentError naming the key, before anything is sent", () => {
    const bad: Array<[unknown, string]> = [
      [null, "options.durability"],
      [{ replicas: 1, timeoutMs: 100, extra: 1 }, "options.durability.extra"],
      [{ timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: 1 }, "options.durability.timeoutMs"],
      [{ replicas: -1, timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: 1.5, timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: 65, timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: "1", timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: 0, timeoutMs: 100 }, "options.durability.replicas"],
      [{ replicas: 1, timeoutMs: 0 }, "options.durability.timeoutMs"],
      [{ replicas: 1, timeoutMs: 100, aof: "yes" }, "options.durability.aof"],
      // Not below the client's commandTimeout (2 000 ms): ioredis would cut the wait short.
      [{ replicas: 1, timeoutMs: 2_000 }, "options.durability.timeoutMs"],
      // Not below ttlMs (1 000 ms here).
      [{ replicas: 1, timeoutMs: 1_000 }, "options.durability.timeoutMs"],
    ];
    for (const [durability, argument] of bad) {
      for (const make of [
        () => new Mutex(redis, "v", { prefix, ttlMs: 1_000, durability } as never),
        () => new Semaphore(redis, "v", { prefix, ttlMs: 1_000, permits: 2, durability } as never),
        () => new Redlock([redis], "v", { prefix, ttlMs: 1_000, durability } as never),
      ]) {
        let error: unknown;
        try {
          make();
        } catch (err) {
          error = err;
        }
        expect(error, JSON.stringify(durability)).toBeInstanceOf(InvalidArgumentError);
        expect((error as InvalidArgumentError).argument).toBe(argument);
      }
    }
    expect(
      () => new Mutex(redis, "v", { prefix, durability: { replicas: 0, aof: true, timeoutMs: 500 } }),
    ).not.toThrow();
  });

  it("sends WAIT right behind the script; with no replica to acknowledge, the acquire fails and is released", async () => {
    const durability = { replicas: 1, timeoutMs: 150 };
    const mutex = new Mutex(redis, "no-replica", { prefix, durability });
    const sem = new Semaphore(redis, "no-replica", { prefix, permits: 3, durability });
    const counted = await countCommands(servers[0] as RedisServer, () =>
      mutex.acquire({ waitMs: 0 }).catch((e: unknown) => e),
    );
    expect(counted.result).toBeInstanceOf(DurabilityError);
    expect(counted.result).toMatchObject({
      code: "ERR_DURABILITY",
      reason: "timeout",
      operation: "lock/acquire",
      replicasRequired: 1,
      replicasAcknowledged: 0,
      timeoutMs: 150,
    });
    // The script, its WAIT, then the release of what it won (never handed out).
    expect(counted.sent).toEqual({ evalsha: 2, wait: 1 });
    expect(await admin.exists(`${prefix}:lock:{no-replica}`)).toBe(0);

    await expect(sem.tryAcquire()).rejects.toMatchObject({ code: "ERR_DURABILITY", operation: "lock/sem-acquire" });
    expect(await admin.zcard(`${prefix}:sem:{no-replica}`)).toBe(0);
    // A busy lock is busy: nothing was written, nothing to confirm.
    const holder = await new Mutex(redis, "no-replica", { prefix }).acquire();
    await expect(mutex.acquire({ waitMs: 0 })).rejects.toMatchObject({ code: "ERR_LOCK_BUSY" });
    await holder.release();
  });

  it("acquire keeps trying until waitMs and then rejects with the DurabilityError", async () => {
    const mutex = new Mutex(redis, "retry", { prefix, durability: { replicas: 1, timeoutMs: 100 } });
    const started = Date.now();
    const error = await mutex.acquire({ waitMs: 600 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DurabilityError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(await admin.exists(`${prefix}:lock:{retry}`)).toBe(0);
  });

  it("WAITAOF is feature-detected: on Redis < 7.2, aof: true rejects before sending; 'if-supported' uses WAIT", async () => {
    expect(await serverAtLeast(redis, "7.2.0")).toBe(false); // the suite's Redis is 7.0
    const required = new Mutex(redis, "aof", { prefix, durability: { replicas: 0, aof: true, timeoutMs: 200 } });
    const counted = await countCommands(servers[0] as RedisServer, () =>
      required.acquire({ waitMs: 0 }).catch((e: unknown) => e),
    );
    expect(counted.result).toBeInstanceOf(DurabilityError);
    expect(counted.result).toMatchObject({ reason: "unsupported", operation: "lock/acquire" });
    // Nothing but (possibly) the release of the unknown token: no script that could have taken the lock.
    expect(counted.sent.wait ?? 0).toBe(0);
    expect(counted.sent.waitaof ?? 0).toBe(0);
    expect(await admin.exists(`${prefix}:lock:{aof}`)).toBe(0);

    const optional = new Mutex(redis, "aof", {
      prefix,
      durability: { replicas: 0, aof: "if-supported", timeoutMs: 200 },
    });
    const ok = await countCommands(servers[0] as RedisServer, () => optional.acquire({ waitMs: 0 }));
    expect(ok.sent).toEqual({ evalsha: 1, wait: 1 });
    const extended = await countCommands(servers[0] as RedisServer, () => ok.result.extend());
    expect(extended.sent).toEqual({ evalsha: 1, wait: 1 });
    await ok.result.release();
  });

  it("after NOSCRIPT (script cache flushed) the source is sent and the wait again behind it", async () => {
    const mutex = new Mutex(redis, "noscript", {
      prefix,
      durability: { replicas: 0, aof: "if-supported", timeoutMs: 200 },
    });
    await admin.script("FLUSH");
    const counted = await countCommands(servers[0] as RedisServer, () => mutex.acquire({ waitMs: 0 }));
    expect(counted.sent).toEqual({ evalsha: 1, wait: 2, eval: 1 });
    expect(counted.result.fence).toBeGreaterThan(0);
    expect(await admin.get(`${prefix}:lock:{noscript}`)).toBe(counted.result.token);
    await counted.result.release();
  });

  it("Redlock: a master whose replicas did not confirm does not count; no quorum, nothing left held", async () => {
    const nodes = servers.map((s) => s.client({ commandTimeoutMs: 2_000 }));
    const admins = servers.map((s) => connect(s.adminUrl));
    try {
      const redlock = new Redlock(nodes, "rl", { prefix, ttlMs: 5_000, durability: { replicas: 1, timeoutMs: 100 } });
      const error = await redlock.acquire({ waitMs: 0 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DurabilityError);
      expect(error).toMatchObject({ operation: "lock/acquire", replicasAcknowledged: 0 });
      for (const a of admins) expect(await a.exists(`${prefix}:lock:{rl}`)).toBe(0);
      // With a setting every master can meet, the lease is granted as usual.
      const ok = new Redlock(nodes, "rl", {
        prefix,
        ttlMs: 5_000,
        durability: { replicas: 0, aof: "if-supported", timeoutMs: 100 },
      });
      const lease = await ok.acquire({ waitMs: 0 });
      await lease.extend();
      expect(await lease.release()).toBe(true);
    } finally {
      for (const c of [...nodes, ...admins]) c.disconnect();
    }
  });
});

describe("lock durability setting on a Redis Cluster with a replica per master", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ replicasPerMaster: 1, leastPrivilege: true });
    // Every master has its replica online before the test starts (the cluster reports ok before they synced).
    const admins = cluster.nodes.map((n) => connect(n.adminUrl));
    try {
      await waitUntil(
        "every master's replica to come online",
        async () => {
          const infos = await Promise.all(admins.map((a) => a.info("replication")));
          const masters = infos.filter((i) => i.includes("role:master"));
          return masters.length > 0 && masters.every((i) => /slave0:.*state=online/.test(i));
        },
        { timeoutMs: 60_000, intervalMs: 50 },
      );
    } finally {
      for (const a of admins) a.disconnect();
    }
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
  });

  it("script and WAIT go to the node owning the lock (a pipeline): replicas: 1 is met, replicas: 2 is not", async () => {
    const redis = connect(cluster.url, { commandTimeoutMs: 5_000 });
    try {
      const names = ["c-a", "c-b", "c-c", "c-d", "c-e", "c-f"]; // spread over the masters' slots
      // A generous wait: on a loaded machine a replica's acknowledgement took over 500 ms (a full-suite run).
      const durability = { replicas: 1, timeoutMs: 3_000 };
      for (const name of names) {
        const mutex = new Mutex(redis, name, { prefix, ttlMs: 5_000, durability });
        const lease = await mutex.acquire({ waitMs: 0 });
        await lease.extend();
        expect(await lease.release()).toBe(true);
        const sem = new Semaphore(redis, name, { prefix, permits: 2, durability });
        await (await sem.acquire({ waitMs: 0 })).release();
      }
      const tooMany = new Mutex(redis, "c-a", { prefix, ttlMs: 5_000, durability: { replicas: 2, timeoutMs: 100 } });
      await expect(tooMany.acquire({ waitMs: 0 })).rejects.toMatchObject({
        code: "ERR_DURABILITY",
        replicasAcknowledged: 1,
      });
      const again = await new Mutex(redis, "c-a", { prefix, ttlMs: 5_000 }).acquire({ waitMs: 0 });
      await again.release();
    } finally {
      redis.disconnect();
    }
  }, 60_000);

  it("after a failover of the lock's master, durable calls follow the slot to the promoted replica", async () => {
    const redis = connect(cluster.url, { commandTimeoutMs: 5_000 });
    const admin = connect(cluster.adminUrl);
    const durability = { replicas: 1, timeoutMs: 3_000 };
    try {
      const mutex = new Mutex(redis, "c-failover", { prefix, ttlMs: 5_000, durability });
      const first = await mutex.acquire({ waitMs: 0 });
      expect(await first.release()).toBe(true);
      // The replica of the master serving the lock's slot takes over (a manual failover: no write is lost).
      const slot = Number(await admin.call("CLUSTER", "KEYSLOT", `${prefix}:lock:{c-failover}`));
      const ranges = (await admin.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number]]>;
      const masterPort = ranges.find(([from, to]) => from <= slot && slot <= to)?.[2][1];
      const master = cluster.nodes.find((n) => n.port === masterPort);
      const masterAdmin = connect(master?.adminUrl as string);
      const replicaPort = Number(/slave0:[^\r\n]*port=(\d+)/.exec(await masterAdmin.info("replication"))?.[1]);
      masterAdmin.disconnect();
      const node = cluster.nodes.find((n) => n.port === replicaPort);
      expect(node, "the lock's master has a replica").toBeDefined();
      const promoted = connect(node?.adminUrl as string);
      try {
        // A manual failover that does not complete within Redis' 5 s limit (the replica catching up, the vote) is
        // dropped without a word; on a loaded machine that happens, so it is asked for again until it took place.
        expect(await promoted.call("CLUSTER", "FAILOVER")).toBe("OK");
        let asked = performance.now();
        await waitUntil(
          "the replica to take over the slot",
          async () => {
            if ((await promoted.info("replication")).includes("role:master")) return true;
            if (performance.now() - asked > 6_000) {
              await promoted.call("CLUSTER", "FAILOVER");
              asked = performance.now();
            }
            return false;
          },
          { timeoutMs: 45_000, intervalMs: 50 },
        );
        await waitUntil(
          "the promoted master to have a replica of its own online",
          async () => /slave0:.*state=online/.test(await promoted.info("replication")),
          { timeoutMs: 45_000, intervalMs: 50 },
        );
      } finally {
        promoted.disconnect();
      }
      // The client's slot map still names the old master, now a replica: its answer is MOVED, inside the pipeline
      // that carries the WAIT. The calls must go to the new master, not fail.
      const second = await mutex.acquire({ waitMs: 0 });
      expect(second.fence).toBeGreaterThan(first.fence);
      expect(await second.release()).toBe(true);
      const sem = new Semaphore(redis, "c-failover", { prefix, permits: 1, durability });
      await (await sem.acquire({ waitMs: 0 })).release();
    } finally {
      redis.disconnect();
      admin.disconnect();
    }
  }, 120_000);
});
