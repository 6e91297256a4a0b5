/**
 * `enableOfflineQueue: false` on a user's client that is connected: every command it sends itself works, and so must the
 * connections Coordis opens with `duplicate()`. They inherit the option and send their first (S)SUBSCRIBE while still
 * connecting, which ioredis refused at once ("Stream isn't writeable and enableOfflineQueue options is false"): PubSub,
 * Queue.result() and the cache's invalidation bus failed though Redis was up. Coordis' own connections now keep an
 * offline queue (core's ownConnectionOptions()).
 */
import { Cache } from "@coordis/cache";
import { safeRedisOptions } from "@coordis/core";
import { type RedisServer, startRedis } from "@coordis/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHECKS, cacheCheck, eventLogCheck, type MakeClient, pubSubCheck, queueCheck } from "./exercise.js";

let servers: RedisServer[] = [];
const clients: Redis[] = [];
beforeAll(async () => {
  servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await Promise.all(servers.map((s) => s.stop()));
});

/** A connected client with `enableOfflineQueue: false` (one not connected yet refuses commands by design). */
const make: MakeClient = async (node = 0) => {
  const server = servers[node] as RedisServer;
  const client = new Redis({ ...safeRedisOptions, host: server.host, port: server.port, enableOfflineQueue: false });
  client.on("error", () => {});
  clients.push(client);
  await new Promise((resolve) => client.once("ready", resolve));
  return client;
};

describe("a connected client built with enableOfflineQueue: false", () => {
  const ownConnections = new Set([pubSubCheck, queueCheck, cacheCheck, eventLogCheck]);
  it.each(CHECKS.filter(([, check]) => !ownConnections.has(check)))("%s works", async (_name, check) => {
    await check(make, "nooffline");
  });

  it("EventLog tail and consumer group work (their readers wait for ready)", async () => {
    await eventLogCheck(make, "nooffline");
  });

  it("PubSub.subscribe works (its subscriber connection queues SUBSCRIBE while it connects)", async () => {
    await pubSubCheck(make, "nooffline");
  });

  it("Queue.result() works (its subscriber connection queues SSUBSCRIBE while it connects)", async () => {
    await queueCheck(make, "nooffline");
  });

  it("Cache.ready() resolves with its invalidation subscription live", async () => {
    // README: ready() means "subscription live". Here it resolves while the subscriber's SUBSCRIBE was refused; the
    // bus retries and is healthy about 1 s later, with no observer event meanwhile.
    const cache = new Cache(await make(), { namespace: "nooffline-ready", ttlMs: 60_000 });
    try {
      await cache.ready();
      expect(cache.stats().busHealthy).toBe(true);
    } finally {
      await cache.close();
    }
  });
});
