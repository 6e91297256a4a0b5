import { connect, coreScripts, RedisUnavailableError, runScript, slotOf } from "@coordis/core";
import { type RedisCluster, type RedisServer, startRedisCluster, testPrefix } from "@coordis/testing";
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
  async function ownerAndOther(slot: number): Promise<{ owner: RedisServer; otherId: string }> {
    const masters = cluster.nodes.slice(0, 3);
    let owner: RedisServer | undefined;
    let otherId: string | undefined;
    for (const node of masters) {
      const client = node.client();
      const id = (await client.call("CLUSTER", "MYID")) as string;
      const count = Number(await client.call("CLUSTER", "COUNTKEYSINSLOT", slot));
      const ranges = (await client.call("CLUSTER", "SLOTS")) as Array<[number, number, [string, number, string]]>;
      const mine = ranges.some(([from, to, [, , nodeId]]) => slot >= from && slot <= to && nodeId === id);
      if (mine) owner = node;
      else otherId = id;
      expect(count).toBe(0);
    }
    if (owner === undefined || otherId === undefined) throw new Error(`no owner found for slot ${slot}`);
    return { owner, otherId };
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
});
