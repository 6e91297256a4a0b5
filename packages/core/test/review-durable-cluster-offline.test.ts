import {
  connect,
  coreScripts,
  parseDurability,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  runScriptDurable,
} from "@coordis/core";
import { startRedisCluster, testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("durable-cluster-offline");

// A durable call on a Cluster goes as a pipeline (the script and its WAIT). While the client has no slot map
// (connecting, or reconnecting after losing every node), ioredis keeps an exec'd pipeline out of every queue, with no
// command and no timer, and sends it once it has one: the call's deadline had told its caller it failed (a lock's
// acquire is then undone), and the script ran afterwards all the same.
describe("a durable call on a Cluster client without a slot map", () => {
  it("is not sent once its deadline has passed, and the client goes on", async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    const tag = `${prefix}:{d}`;
    let client: RedisClient | undefined;
    try {
      // The nodes know the script (a late EVALSHA would run) and stop answering.
      for (const node of cluster.nodes) await node.client().script("LOAD", coreScripts.probe.source);
      for (const node of cluster.nodes) await node.pause();
      client = connect(cluster.url, { commandTimeoutMs: 300 });
      client.on("error", () => {});
      const durability = parseDurability("durability", { replicas: 1, timeoutMs: 50 });
      const call = runScriptDurable(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["late", 60_000], durability);
      await expect(call).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(client.status).not.toBe("ready");
      for (const node of cluster.nodes) await node.resume();
      const ready = client;
      await waitUntil("the client to be ready", () => ready.status === "ready", 30_000);
      // A durable call made now reaches the node; a call of the same slot made after it comes back after it.
      const now = await runScriptDurable(
        client,
        coreScripts.probe,
        [`${tag}:w`, `${tag}:c2`],
        ["now", 60_000],
        durability,
      );
      expect(now.reply.slice(0, 2)).toEqual(["now", 1]);
      expect(
        (await runScript(client, coreScripts.probe, [`${tag}:x`, `${tag}:c3`], ["x", 60_000])).slice(0, 2),
      ).toEqual(["x", 1]);
      expect(await client.exists(`${tag}:v`, `${tag}:c`)).toBe(0);
    } finally {
      client?.disconnect();
      await cluster.stop();
    }
  }, 60_000);
});
