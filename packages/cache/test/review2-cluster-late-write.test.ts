import { connect, type RedisClient, RedisUnavailableError, slotOf } from "@coordis/core";
import { recordObserver, slotOwnerPort, testPrefix, waitUntil } from "@coordis/testing";
import type { Cluster, Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix("c2late");

type Change = "set" | "delete" | "invalidateTag";

/**
 * On a Cluster an entry (or tag) and the namespace's invalidation channel live on different masters. A change whose
 * command is held up on its way to the entry's master (a slow link, packets retransmitted: here the writer's socket to
 * that master is corked) times out, and its invalidation, sent to the channel's master, overtakes it: a replica that
 * reads the key meanwhile gets the old value (still in Redis) back into L1. When the held-up write then lands, nothing
 * tells the replicas: the README promised that "its invalidation, sent after it, reaches every replica then".
 */
describe("Cache on a Cluster: a change whose command reaches its node only after the call timed out", () => {
  const clients: RedisClient[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  for (const change of ["set", "delete", "invalidateTag"] as const satisfies readonly Change[]) {
    it(`${change}: once the late command has run, no replica keeps serving the old value from L1`, async () => {
      const namespace = `late-${change}`;
      const admin = connect(inject("coordisAdminClusterUrl")) as Cluster;
      const writerClient = connect(inject("coordisClusterUrl"), { commandTimeoutMs: 1_000 });
      const replicaClient = connect(inject("coordisClusterUrl"));
      clients.push(admin, writerClient, replicaClient);
      const channelPort = await slotOwnerPort(admin, slotOf(`${prefix}:cache-bus:${namespace}`));
      // A key (and a tag) whose slot another master serves than the channel's.
      let key = "";
      let tag = "";
      for (let i = 0; key === "" || tag === ""; i++) {
        if (
          key === "" &&
          (await slotOwnerPort(admin, slotOf(`${prefix}:cache:{${namespace}:k${i}}`))) !== channelPort
        ) {
          key = `k${i}`;
        }
        if (
          tag === "" &&
          (await slotOwnerPort(admin, slotOf(`${prefix}:cache-tag:{${namespace}:t${i}}`))) !== channelPort
        ) {
          tag = `t${i}`;
        }
      }
      const heldKey = change === "invalidateTag" ? `${prefix}:cache-tag:{${namespace}:${tag}}` : undefined;
      const entryKey = `${prefix}:cache:{${namespace}:${key}}`;
      const rec = recordObserver();
      const options = { namespace, prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
      const writer = new Cache(writerClient, options);
      const replica = new Cache(replicaClient, { ...options, l1: { ttlMs: 600_000 }, observer: rec });
      let stream: { cork(): void; uncork(): void } | undefined;
      try {
        await Promise.all([writer.ready(), replica.ready()]);
        // Every script of the change has run on that master already (a first call meeting NOSCRIPT late is not retried).
        await writer.set(key, "old", { tags: [tag] });
        await writer.delete(key);
        await writer.set(key, "old", { tags: [tag] });
        const inL1 = async () => (await replica.get(key)) === "old" && tiers(rec).at(-1) === "l1/hit";
        await waitUntil("the replica's L1 to hold the old value", inL1, 5_000);
        // The writer's link to the master of the entry (or tag) holds its packets back.
        const port = await slotOwnerPort(admin, slotOf(heldKey ?? entryKey));
        await writerClient.ping();
        const node = (writerClient as Cluster).nodes("master").find((n) => n.options.port === port) as Redis;
        stream = (node as unknown as { stream: { cork(): void; uncork(): void } }).stream;
        stream.cork();
        const heard = rec.events.filter((e) => e.type === "invalidation").length;
        const call =
          change === "set"
            ? writer.set(key, "new")
            : change === "delete"
              ? writer.delete(key)
              : writer.invalidateTag(tag);
        const outcome = call.then(
          () => "resolved",
          (err: unknown) => err,
        );
        // The invalidation went ahead of the change: the replica reads the old value again, still in Redis.
        await waitUntil(
          "the replica to hear the invalidation",
          () => rec.events.filter((e) => e.type === "invalidation").length > heard,
          5_000,
        );
        await waitUntil("the old value back in the replica's L1", inL1, 2_000);
        // The held-up command reaches its master and runs.
        stream.uncork();
        stream = undefined;
        const landed = async () =>
          change === "set"
            ? (await admin.hget(entryKey, "v")) === '"new"'
            : change === "delete"
              ? (await admin.exists(entryKey)) === 0
              : (await admin.exists(heldKey as string)) === 0;
        await waitUntil("the late command to have run", landed, 5_000);
        expect(await outcome).toBeInstanceOf(RedisUnavailableError);
        // Every replica is told once it has run: the old value is not served any more.
        const expected = change === "set" ? "new" : undefined;
        await waitUntil(
          "the replica to stop serving the old value",
          async () => (await replica.get(key)) === expected,
          3_000,
        );
      } finally {
        stream?.uncork();
        await Promise.all([writer.close(), replica.close()]);
      }
    });
  }
});
