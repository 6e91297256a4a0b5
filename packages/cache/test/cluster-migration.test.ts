import { slotOf } from "@coordis/core";
import { type RedisCluster, recordObserver, startRedisCluster, testPrefix } from "@coordis/testing";
import type { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix("cachemig");

/** The master node serving `slot`, as [host, port, node id], from CLUSTER SLOTS. */
async function ownerOf(admin: Cluster, slot: number): Promise<[string, number, string]> {
  const ranges = (await admin.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, string]]>;
  const range = ranges.find(([from, to]) => from <= slot && slot <= to);
  if (range === undefined) throw new Error(`no node serves slot ${slot}`);
  return range[2];
}

/** The admin client's connection to the master at `port`. */
function masterAt(admin: Cluster, port: number): Redis {
  const node = admin.nodes("master").find((n) => n.options.port === port);
  if (node === undefined) throw new Error(`no master on port ${port}`);
  return node;
}

describe("plain reads (get) on a Cluster while an entry's slot is migrated, then moved", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("an entry moved to another node mid-migration (ASK), then with its slot (MOVED), is still an L2 hit", async () => {
    const admin = cluster.adminClient() as Cluster;
    await admin.ping();
    const rec = recordObserver();
    // No L1: every get reads Redis. One failure would open the breaker.
    const cache = new Cache(cluster.client(), {
      namespace: "mig",
      prefix,
      ttlMs: 60_000,
      l1: false,
      breaker: { failures: 1, cooldownMs: 60_000 },
      observer: rec,
    });
    try {
      await cache.ready();
      await cache.set("user:1", { name: "ada" });
      expect(await cache.get("user:1")).toEqual({ name: "ada" });

      const entryKey = `${prefix}:cache:{mig:user:1}`;
      const slot = slotOf(entryKey);
      expect(await admin.exists(entryKey)).toBe(1);
      const [, sourcePort, sourceId] = await ownerOf(admin, slot);
      const source = masterAt(admin, sourcePort);
      const target = admin.nodes("master").find((n) => n.options.port !== sourcePort) as Redis;
      const targetId = (await target.call("CLUSTER", "MYID")) as string;

      // Migration under way: the entry already on the target, the slot still the source's (the source answers ASK).
      await target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", sourceId);
      await source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", targetId);
      await source.call(
        "MIGRATE",
        target.options.host ?? "127.0.0.1",
        target.options.port ?? 0,
        "",
        0,
        5_000,
        "KEYS",
        entryKey,
      );
      expect(await source.call("CLUSTER", "COUNTKEYSINSLOT", slot)).toBe(0);
      expect(await target.call("CLUSTER", "COUNTKEYSINSLOT", slot)).toBe(1);
      expect(await cache.get("user:1")).toEqual({ name: "ada" });

      // Migration done: the slot is the target's; the client's slot map still names the source (it answers MOVED).
      await target.call("CLUSTER", "SETSLOT", slot, "NODE", targetId);
      await source.call("CLUSTER", "SETSLOT", slot, "NODE", targetId);
      for (const n of admin.nodes("master"))
        if (n !== source && n !== target) await n.call("CLUSTER", "SETSLOT", slot, "NODE", targetId);
      expect(await cache.get("user:1")).toEqual({ name: "ada" });
      expect(await cache.get("user:1")).toEqual({ name: "ada" });

      expect(tiers(rec)).toEqual(["l2/hit", "l2/hit", "l2/hit", "l2/hit"]);
      expect(rec.ops.filter((o) => o.op === "get" && o.outcome === "error")).toEqual([]);
      expect(cache.stats().circuit).toBe("closed");
    } finally {
      await cache.close();
    }
  }, 60_000);
});
