import {
  connect,
  coreScripts,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  safeRedisOptions,
} from "@coordis/core";
import { type RedisServer, startRedisCluster, startRedisSentinel, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("offline");

// While a client reconnects, ioredis keeps new commands in an offline queue; with a command timeout it rejects those
// that wait too long, but used to leave them queued and send them once the connection was back: a call its caller
// was told had failed ran later, behind the caller's back. Coordis takes such a command out of the queue.
describe("a command that failed while the client was reconnecting", () => {
  const redis = proxiedServer();

  /** Cuts the client off (connections refused and dropped) until it reports that it is reconnecting. */
  async function cutOff(client: RedisClient): Promise<void> {
    redis.proxy.refuse();
    redis.proxy.dropConnections();
    await waitUntil("the client to reconnect", () => client.status !== "ready", 5_000);
  }

  /** Lets the client back in and waits until it answers. */
  async function restore(client: RedisClient): Promise<void> {
    await redis.proxy.accept();
    await waitUntil("the client to be ready", () => client.status === "ready", 10_000);
    await client.ping();
  }

  it.each([
    ["connect()", () => connect(redis.proxy.url, { commandTimeoutMs: 300 })],
    [
      "a client of yours given to Coordis",
      () => new Redis(`${redis.proxy.url}`, { ...safeRedisOptions, commandTimeout: 300 }),
    ],
  ] as const)("%s: a script and a command that timed out are never sent after the reconnect", async (_kind, make) => {
    const client = make();
    client.on("error", () => {});
    const tag = `${prefix}:{${_kind.length}}`;
    try {
      // Coordis has used the client (a script call): it is guarded from then on.
      await runScript(client, coreScripts.probe, [`${tag}:warm`, `${tag}:warm-c`], ["w", 60_000]);
      await cutOff(client);
      const script = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["late", 60_000]);
      const command = client.incr(`${tag}:n`);
      await expect(script).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(command).rejects.toThrow(/timed out/);
      await restore(client);
      // A command sent after the reconnect comes back after anything the queue still held.
      expect(await client.exists(`${tag}:v`, `${tag}:c`, `${tag}:n`)).toBe(0);
      expect(await redis.direct.exists(`${tag}:v`, `${tag}:c`, `${tag}:n`)).toBe(0);
    } finally {
      await redis.proxy.accept();
      client.disconnect();
    }
  });

  it("a pipeline or a transaction that timed out in the queue is left whole: replies stay in step", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: 300 });
    const tag = `${prefix}:{batches}`;
    try {
      await runScript(client, coreScripts.probe, [`${tag}:warm`, `${tag}:warm-c`], ["w", 60_000]);
      await cutOff(client);
      const pipeline = client.pipeline().incr(`${tag}:p`).incr(`${tag}:p`).exec();
      const transaction = client.multi().incr(`${tag}:m`).incr(`${tag}:m`).exec();
      const single = client.incr(`${tag}:s`);
      await Promise.allSettled([pipeline, transaction, single]);
      await expect(single).rejects.toThrow(/timed out/);
      await restore(client);
      // Every later command gets its own reply.
      for (let i = 0; i < 3; i++) {
        expect(await client.set(`${tag}:x`, String(i))).toBe("OK");
        expect(await client.get(`${tag}:x`)).toBe(String(i));
      }
    } finally {
      await redis.proxy.accept();
      client.disconnect();
    }
  });

  it("a command that waits less than the timeout still runs once the connection is back", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: 5_000 });
    const tag = `${prefix}:{in-time}`;
    try {
      await client.ping();
      await cutOff(client);
      const pending = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["in time", 60_000]);
      await restore(client);
      expect((await pending).slice(0, 2)).toEqual(["in time", 1]);
      expect(await redis.direct.get(`${tag}:c`)).toBe("1");
    } finally {
      await redis.proxy.accept();
      client.disconnect();
    }
  });

  it("through Sentinel: a script and a command that timed out during a failover are not sent to the new master", async () => {
    const setup = await startRedisSentinel({
      replicas: 1,
      downAfterMs: 1_000,
    });
    const client = connect(setup.url, { commandTimeoutMs: 300 });
    const tag = `${prefix}:{sentinel}`;
    try {
      await runScript(client, coreScripts.probe, [`${tag}:warm`, `${tag}:warm-c`], ["w", 60_000]);
      const replica = (setup.replicas[0] as RedisServer).client();
      await waitUntil("the replica to sync", async () => (await replica.get(`${tag}:warm`)) === "w", 10_000);
      await setup.master.kill();
      await waitUntil("the client to reconnect", () => client.status !== "ready", 5_000);
      const script = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["late", 60_000]);
      // (A script sent late would meet NOSCRIPT there: the new master never loaded it. A command would run.)
      const command = client.incr(`${tag}:n`);
      await expect(script).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(command).rejects.toThrow(/timed out/);
      const promoted = await setup.waitForFailover(setup.master);
      await waitUntil("the client on the new master", () => client.status === "ready", 30_000);
      await client.ping();
      expect(await promoted.client().exists(`${tag}:v`, `${tag}:c`, `${tag}:n`)).toBe(0);
      expect(await client.get(`${tag}:warm`)).toBe("w");
    } finally {
      client.disconnect();
      await setup.stop();
    }
  }, 90_000);

  it("on a Cluster client that has no slot map yet, a script and a command past the deadline are not sent later", async () => {
    const cluster = await startRedisCluster({ masters: 3 });
    const tag = `${prefix}:{cluster}`;
    let client: RedisClient | undefined;
    try {
      // The nodes know the script (a late EVALSHA would run) and stop answering: a client started now stays without
      // a slot map, and its calls wait in the Cluster client's own queue.
      for (const node of cluster.nodes) await node.client().script("LOAD", coreScripts.probe.source);
      for (const node of cluster.nodes) await node.pause();
      client = connect(cluster.url, { commandTimeoutMs: 300 });
      client.on("error", () => {});
      const script = runScript(client, coreScripts.probe, [`${tag}:v`, `${tag}:c`], ["late", 60_000]);
      const command = client.incr(`${tag}:n`);
      await expect(script).rejects.toBeInstanceOf(RedisUnavailableError);
      await expect(command).rejects.toThrow(/timed out/);
      expect(client.status).not.toBe("ready");
      for (const node of cluster.nodes) await node.resume();
      const ready = client;
      await waitUntil("the client to be ready", () => ready.status === "ready", 30_000);
      // A call made now comes after anything the queue still held.
      expect(await client.exists(`${tag}:v`)).toBe(0);
      expect(await client.exists(`${tag}:n`)).toBe(0);
    } finally {
      client?.disconnect();
      await cluster.stop();
    }
  }, 90_000);
});
