import {
  connect,
  coreScripts,
  parseDurability,
  RedisUnavailableError,
  runScript,
  runScriptDurable,
  slotOf,
} from "@coordis/core";
import {
  type RedisCluster,
  type RedisServer,
  startRedis,
  startRedisCluster,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("a script call on a Cluster slot that is being migrated (cluster of its own)", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  });
  afterAll(async () => {
    await cluster.stop();
  });

  /** The master serving `slot` and another master, by their servers and node ids. */
  async function ownerAndOther(
    slot: number,
  ): Promise<{ owner: RedisServer; ownerId: string; other: RedisServer; otherId: string }> {
    const masters = cluster.nodes.slice(0, 3);
    let owner: RedisServer | undefined;
    let ownerId: string | undefined;
    let other: RedisServer | undefined;
    let otherId: string | undefined;
    for (const node of masters) {
      const client = node.client();
      const id = (await client.call("CLUSTER", "MYID")) as string;
      const count = Number(await client.call("CLUSTER", "COUNTKEYSINSLOT", slot));
      const ranges = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, string]]>;
      const mine = ranges.some(([from, to, [, , nodeId]]) => slot >= from && slot <= to && nodeId === id);
      if (mine) {
        owner = node;
        ownerId = id;
      } else {
        other = node;
        otherId = id;
      }
      expect(count).toBe(0);
    }
    if (owner === undefined || ownerId === undefined || other === undefined || otherId === undefined) {
      throw new Error(`no owner found for slot ${slot}`);
    }
    return { owner, ownerId, other, otherId };
  }

  it("a script whose keys are split by the migration (redirected until ioredis gives up) fails as RedisUnavailableError and runs nothing", async () => {
    const tag = `${prefix}:{migrating}`;
    const slot = slotOf(`${tag}:v`);
    const { owner, otherId } = await ownerAndOther(slot);
    const source = owner.client();
    // One of the script's keys is still on the source, the other is not (moved already, or never written): the
    // source answers TRYAGAIN for as long as the migration lasts.
    await source.set(`${tag}:v`, "before");
    await source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", otherId);
    const redis = connect(cluster.url, { commandTimeoutMs: 2_000 });
    let err: unknown;
    try {
      err = await runScript(redis, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["after", 10_000]).catch(
        (e: unknown) => e,
      );
    } finally {
      redis.disconnect();
      await source.call("CLUSTER", "SETSLOT", slot, "STABLE");
    }
    // The slot keeps answering TRYAGAIN (or redirects) until ioredis gives up: the call did not run, and it may well
    // succeed once the migration is over, so it is "unavailable", not a refusal of the call.
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect(await source.get(`${tag}:v`)).toBe("before");
    expect(await source.exists(`${tag}:c`)).toBe(0);
  });

  it("a durable script call whose keys were already moved to the importing node follows ASK: it runs there once", async () => {
    const tag = `${prefix}:{asked}`;
    const slot = slotOf(`${tag}:v`);
    const { owner, ownerId, other, otherId } = await ownerAndOther(slot);
    const source = owner.client();
    const target = other.client();
    // The target has never run the script: after ASK it answers NOSCRIPT, and the source goes there too.
    await target.script("FLUSH");
    await source.set(`${tag}:v`, "before");
    await source.set(`${tag}:c`, "5");
    await target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", ownerId);
    await source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", otherId);
    // The migration has moved both keys (a key missing on both sides would make the target answer TRYAGAIN).
    await source.call("MIGRATE", other.host, other.port, "", 0, 5_000, "KEYS", `${tag}:v`, `${tag}:c`);
    const redis = connect(cluster.url, { commandTimeoutMs: 2_000 });
    const durability = parseDurability("durability", { replicas: 0, aof: "if-supported", timeoutMs: 100 });
    try {
      // Neither key is on the source any more: it answers ASK, naming the importing node.
      const { reply, error } = await runScriptDurable(
        redis,
        coreScripts.probe,
        [`${tag}:v`, `${tag}:c`],
        ["asked", 10_000],
        durability,
      );
      expect(error).toBeUndefined();
      expect(reply.slice(0, 2)).toEqual(["asked", 6]);
    } finally {
      redis.disconnect();
      // The migration ends with the slot on the target, where the script wrote.
      for (const node of cluster.nodes.slice(0, 3)) {
        await node.client().call("CLUSTER", "SETSLOT", slot, "NODE", otherId);
      }
    }
    expect(await target.get(`${tag}:v`)).toBe("asked");
    expect(await target.get(`${tag}:c`)).toBe("6");
    expect(await source.call("CLUSTER", "COUNTKEYSINSLOT", slot)).toBe(0);
  });

  it("it also follows ASK to a node just added, which serves no slot yet and is unknown to the client", async () => {
    const tag = `${prefix}:{scale-out}`;
    const slot = slotOf(`${tag}:v`);
    const { owner, ownerId } = await ownerAndOther(slot);
    const added = await startRedis({
      busPortOffset: 10_000,
      config: { "cluster-enabled": "yes", "cluster-config-file": "nodes.conf", "cluster-node-timeout": 2_000 },
    });
    const source = owner.client();
    const target = added.client();
    const redis = connect(cluster.url, { commandTimeoutMs: 2_000 });
    try {
      await source.call("CLUSTER", "MEET", added.host, added.port);
      const addedId = (await target.call("CLUSTER", "MYID")) as string;
      await waitUntil(
        "the new node to know the cluster (state ok) and the source to know it",
        async () =>
          ((await target.call("CLUSTER", "NODES")) as string).trim().split("\n").length === cluster.nodes.length + 1 &&
          ((await source.call("CLUSTER", "NODES")) as string).includes(addedId) &&
          ((await target.call("CLUSTER", "INFO")) as string).includes("cluster_state:ok"),
        15_000,
      );
      // The client has read the slot map already: the new node is not in it (it serves no slot).
      await redis.ping();
      await source.set(`${tag}:v`, "before");
      await source.set(`${tag}:c`, "5");
      await target.call("CLUSTER", "SETSLOT", slot, "IMPORTING", ownerId);
      await source.call("CLUSTER", "SETSLOT", slot, "MIGRATING", addedId);
      await source.call("MIGRATE", added.host, added.port, "", 0, 5_000, "KEYS", `${tag}:v`, `${tag}:c`);
      const durability = parseDurability("durability", { replicas: 0, aof: "if-supported", timeoutMs: 100 });
      const { reply, error } = await runScriptDurable(
        redis,
        coreScripts.probe,
        [`${tag}:v`, `${tag}:c`],
        ["scaled", 10_000],
        durability,
      );
      expect(error).toBeUndefined();
      expect(reply.slice(0, 2)).toEqual(["scaled", 6]);
      // Run there once: the keys hold what it wrote.
      const check = target.pipeline().call("ASKING").get(`${tag}:v`).call("ASKING").get(`${tag}:c`);
      const replies = ((await check.exec()) ?? []).map(([, v]) => v);
      expect([replies[1], replies[3]]).toEqual(["scaled", "6"]);
    } finally {
      redis.disconnect();
      // The slot goes back to its owner, and the new node leaves (the cluster is stopped after this file anyway).
      await source.call("CLUSTER", "SETSLOT", slot, "STABLE").catch(() => 0);
      await added.stop();
    }
  });
});
