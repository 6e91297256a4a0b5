import { connect, coreScripts, isClosed, RedisUnavailableError, runScript, runScriptSource } from "@coordis/core";
import { freePort, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import type { Cluster, Redis } from "ioredis";
import { describe, expect, it } from "vitest";

const prefix = testPrefix();
const keys = [`${prefix}:{closed}:v`, `${prefix}:{closed}:c`] as const;

/** ioredis' offline queue length: what a call would wait in, to be sent if the client were ever connected again. */
function queued(client: Redis | Cluster): number {
  return (client as unknown as { offlineQueue: { length: number } }).offlineQueue.length;
}

// A client the application closed never answers again. ioredis leaves a Cluster that had lost every node and was then
// disconnected in status "disconnecting" for good (no node left to close, so no "end"): isClosed() said false, and the
// primitives kept retrying on it. A script call made on such a client (or on a standalone one disconnected while it
// waited to reconnect) went to the offline queue and waited out its whole deadline instead of failing at once.
describe("a client the application closed", () => {
  const redis = proxiedServer();

  it("a Cluster disconnected while it reconnects is closed, and a script call on it fails at once", async () => {
    const cluster = connect(`redis+cluster://127.0.0.1:${await freePort()}`, { commandTimeoutMs: 60_000 }) as Cluster;
    cluster.on("error", () => {});
    try {
      await waitUntil("the cluster to wait for its next attempt", () => cluster.status === "reconnecting", 10_000);
      expect(isClosed(cluster)).toBe(false);
      cluster.disconnect();
      expect(cluster.status).toBe("disconnecting"); // what ioredis leaves it in, for good
      expect(isClosed(cluster)).toBe(true);
      const call = runScript(cluster, coreScripts.probe, keys, ["x", 1_000]);
      expect(queued(cluster)).toBe(0);
      await expect(call).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(call).rejects.toThrow(/closed/);
    } finally {
      cluster.disconnect();
    }
  });

  it("a standalone client disconnected while it reconnects fails a script call at once, sending nothing later", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: 60_000 }) as Redis;
    client.on("error", () => {});
    try {
      await client.ping();
      redis.proxy.refuse();
      redis.proxy.dropConnections();
      await waitUntil("the client to wait for its next attempt", () => client.status === "reconnecting", 5_000);
      client.disconnect();
      expect(isClosed(client)).toBe(true);
      const calls = [
        runScript(client, coreScripts.probe, keys, ["x", 1_000]),
        runScriptSource(client, coreScripts.probe, keys, ["x", 1_000]),
      ];
      expect(queued(client)).toBe(0);
      for (const call of calls) await expect(call).rejects.toThrow(/closed/);
      await expect(calls[0]).rejects.toBeInstanceOf(RedisUnavailableError);
    } finally {
      client.disconnect();
      await redis.proxy.accept();
    }
  });
});
