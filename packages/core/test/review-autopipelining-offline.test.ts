import {
  connect,
  coreScripts,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  safeRedisOptions,
} from "@coordis/core";
import { startRedisCluster, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("autopipe-offline");

// With enableAutoPipelining (an option the README lists as supported), ioredis sends every command, Coordis' script
// calls included, as part of a pipeline. The offline-queue guard only took single commands out of the queue, so a
// script call that timed out while the client reconnected (its caller told RedisUnavailableError) still ran once the
// connection was back.
describe("enableAutoPipelining: a call that failed while the client was reconnecting", () => {
  const redis = proxiedServer();

  it.each([
    [
      "connect()",
      () => connect(redis.proxy.url, { commandTimeoutMs: 300, redisOptions: { enableAutoPipelining: true } }),
    ],
    [
      "a client of yours",
      () => new Redis(redis.proxy.url, { ...safeRedisOptions, commandTimeout: 300, enableAutoPipelining: true }),
    ],
  ] as const)("%s: is never sent after the reconnect, and replies stay in step", async (kind, make) => {
    const client = make();
    client.on("error", () => {});
    const tag = `${prefix}:{${kind.length}}`;
    try {
      await runScript(client, coreScripts.probe, [`${tag}:warm`, `${tag}:warm-c`], ["w", 60_000]);
      redis.proxy.refuse();
      redis.proxy.dropConnections();
      await waitUntil("the client to reconnect", () => client.status !== "ready", 5_000);
      const script = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["late", 60_000]);
      const command = client.incr(`${tag}:n`);
      await expect(script).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(command).rejects.toThrow(/timed out/);
      await redis.proxy.accept();
      await waitUntil("the client to be ready", () => client.status === "ready", 10_000);
      // Sent after the reconnect, these come back after anything the queue still held.
      for (let i = 0; i < 3; i++) {
        expect(await client.set(`${tag}:x`, String(i))).toBe("OK");
        expect(await client.get(`${tag}:x`)).toBe(String(i));
      }
      expect(await redis.direct.exists(`${tag}:v`, `${tag}:c`, `${tag}:n`)).toBe(0);
    } finally {
      await redis.proxy.accept();
      client.disconnect();
    }
  });

  // A Cluster client without a slot map keeps an auto-pipelined call (no command created, no timer) until it has one:
  // the call's deadline told its caller it had failed, and it ran once the cluster answered.
  it("on a Cluster client that has no slot map yet, a script call past its deadline is not sent later", async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    const tag = `${prefix}:{cluster}`;
    let client: RedisClient | undefined;
    try {
      // The nodes know the script (a late EVALSHA would run) and stop answering.
      for (const node of cluster.nodes) await node.client().script("LOAD", coreScripts.probe.source);
      for (const node of cluster.nodes) await node.pause();
      client = connect(cluster.url, { commandTimeoutMs: 300, clusterOptions: { enableAutoPipelining: true } });
      client.on("error", () => {});
      const script = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["late", 60_000]);
      await expect(script).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(client.status).not.toBe("ready");
      for (const node of cluster.nodes) await node.resume();
      const ready = client;
      await waitUntil("the client to be ready", () => ready.status === "ready", 30_000);
      // A call made now comes after anything the client still held (same slot, same pipeline order).
      expect(
        (await runScript(client, coreScripts.probe, [`${tag}:w`, `${tag}:c2`], ["now", 60_000])).slice(0, 2),
      ).toEqual(["now", 1]);
      expect(await client.exists(`${tag}:v`, `${tag}:c`)).toBe(0);
    } finally {
      client?.disconnect();
      await cluster.stop();
    }
  }, 60_000);
});
