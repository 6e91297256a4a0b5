import { getEventListeners } from "node:events";
import { openBlockingConnection, safeRedisOptions, whenReady } from "@coordis/core";
import { freePort, type RedisServer, startRedis } from "@coordis/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

describe("whenReady (a blocking reader's wait for its connection)", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("opens a connection not opened yet (a duplicate of a lazyConnect client) and resolves once it is ready", async () => {
    const redis = new Redis({ ...safeRedisOptions, host: server.host, port: server.port, lazyConnect: true });
    const conn = openBlockingConnection(redis, 1_000) as Redis;
    try {
      expect(conn.status).toBe("wait");
      await whenReady(conn, new AbortController().signal);
      expect(conn.status).toBe("ready");
      // Ready already: nothing to wait for.
      expect(whenReady(conn, new AbortController().signal)).toBeUndefined();
    } finally {
      conn.disconnect();
      redis.disconnect();
    }
  });

  it("with a timeout, resolves and leaves no listener behind when the connection does not get ready", async () => {
    const port = await freePort();
    const conn = new Redis({ ...safeRedisOptions, port, lazyConnect: true, retryStrategy: () => 50 });
    conn.on("error", () => {});
    const signal = new AbortController().signal;
    try {
      for (let i = 0; i < 12; i++) await whenReady(conn, signal, 20);
      expect(conn.status).not.toBe("ready");
      expect(conn.listenerCount("ready")).toBe(0);
      expect(getEventListeners(signal, "abort")).toHaveLength(0);
    } finally {
      conn.disconnect();
    }
  });

  it("returns at once for a connection that ended (the caller's read then fails and is reported)", () => {
    const conn = new Redis({ ...safeRedisOptions, port: server.port, lazyConnect: true });
    conn.disconnect();
    expect(conn.status).toBe("end");
    expect(whenReady(conn, new AbortController().signal)).toBeUndefined();
  });
});
