import { connect, type RedisClient, slotOf } from "@coordis/core";
import { slotOwnerPort, testPrefix } from "@coordis/testing";
import type { Cluster } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";
import { cacheScripts } from "../src/scripts.generated.js";

const prefix = testPrefix("c2tagpre");

/**
 * On a Cluster a getOrSet given its tags reads the entry and the tags' versions from different masters in parallel: the
 * version may be read before another replica's load created it, and the entry after that load wrote it back. The
 * entry is then newer than the version read, not outdated.
 */
describe("Cache on a Cluster: tag versions read before the entry", () => {
  const clients: RedisClient[] = [];
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((c) => c.close()));
    for (const c of clients) c.disconnect();
  });

  it("an entry a replica filled between the tag read and the entry read is served, not loaded again", async () => {
    const namespace = "tagpre";
    const admin = connect(inject("coordisAdminClusterUrl")) as Cluster;
    const aClient = connect(inject("coordisClusterUrl"));
    const bClient = connect(inject("coordisClusterUrl")) as RedisClient & {
      evalsha: (...args: unknown[]) => Promise<unknown>;
    };
    clients.push(admin, aClient, bClient);
    // A key and a tag served by different masters.
    let key = "";
    const tag = "t";
    const tagPort = await slotOwnerPort(admin, slotOf(`${prefix}:cache-tag:{${namespace}:${tag}}`));
    for (let i = 0; key === ""; i++) {
      if ((await slotOwnerPort(admin, slotOf(`${prefix}:cache:{${namespace}:k${i}}`))) !== tagPort) key = `k${i}`;
    }
    const a = new Cache(aClient, { namespace, prefix, ttlMs: 60_000 });
    const b = new Cache(bClient, { namespace, prefix, ttlMs: 60_000 });
    caches.push(a, b);
    await Promise.all([a.ready(), b.ready()]);
    await b.get("warm-up"); // the scripts are known to every master before the race
    // b's read of the entry is held on its way (a slow link to that master) until a's load has landed; its read of
    // the tag's version, sent beside it to the other master, answers at once (no version yet).
    const evalsha = bClient.evalsha.bind(bClient);
    let refill: Promise<unknown> | undefined;
    bClient.evalsha = (...args: unknown[]) => {
      if (args[0] === cacheScripts.get.sha1 && refill === undefined) {
        refill = a.getOrSet(key, () => "a's", { tags: [tag] });
        return refill.then(() => evalsha(...args));
      }
      return evalsha(...args);
    };
    expect(await b.getOrSet(key, () => "b's", { tags: [tag] })).toBe("a's");
    expect(await refill).toBe("a's");
    expect(b.stats().loads).toBe(0);
    expect(await a.getOrSet(key, () => "a again", { tags: [tag] })).toBe("a's");
  });
});
