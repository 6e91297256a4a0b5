import { type CoordisEvent, connect, type RedisClient } from "@coordis/core";
import {
  type FaultProxy,
  type RedisSentinelSetup,
  startProxy,
  startRedisSentinel,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import type { Redis } from "ioredis";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";

const prefix = testPrefix();

/**
 * A master that freezes (SIGSTOP, a hung host) or is cut off answers nothing and closes no connection. Sentinel
 * promotes its replica, but an ioredis client asks the sentinels for the master only when its connection closes: it
 * used to keep sending every command to the frozen master, each failing by its timeout, for as long as it stayed so.
 */
describe("a connect() Sentinel client when the master freezes and its replica takes over", () => {
  let setup: RedisSentinelSetup | undefined;
  const clients: RedisClient[] = [];
  const proxies: FaultProxy[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.disconnect();
    for (const proxy of proxies.splice(0)) await proxy.close();
    if (setup !== undefined) {
      for (const server of [setup.master, ...setup.replicas]) if (server.paused) server.resume();
      await setup.stop();
      setup = undefined;
    }
  });
  afterAll(() => {
    vi.restoreAllMocks();
  });

  it("calls succeed again on the promoted replica, with the old master still frozen", async () => {
    setup = await startRedisSentinel({ replicas: 1, downAfterMs: 1_000 });
    const redis = connect(setup.url, { commandTimeoutMs: 500 });
    clients.push(redis);
    const key = `${prefix}:{frozen}:v`;
    await redis.set(key, "before");
    const frozen = setup.master;
    frozen.pause();
    const promoted = await setup.waitForFailover(frozen, 30_000);
    const admin = promoted.adminClient();
    try {
      await waitUntil(
        "a call to succeed with the old master still frozen",
        async () => {
          try {
            await redis.set(key, "after");
            return true;
          } catch {
            return false;
          }
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      expect(frozen.paused).toBe(true);
      expect(await admin.get(key)).toBe("after");
    } finally {
      admin.disconnect();
    }
  }, 90_000);

  it("reconnects after a failover announced while it asks a silent sentinel for the master", async () => {
    // Two ways to the one sentinel: the first goes silent (a frozen sentinel, a partition). The client keeps listening
    // for failovers on both. Its master dies: while it asks the silent sentinel where the master is, the other
    // announces the failover. That announcement must not end the client (ioredis would close it for good), and the
    // silent sentinel must not hold the reconnect forever.
    setup = await startRedisSentinel({ replicas: 1, downAfterMs: 1_000 });
    const [silent, other] = [
      await startProxy({ target: setup.sentinel }),
      await startProxy({ target: setup.sentinel }),
    ];
    proxies.push(silent, other);
    const url = setup.url.replace(
      `127.0.0.1:${setup.sentinel.port}/`,
      `${silent.host}:${silent.port},${other.host}:${other.port}/`,
    );
    expect(url).not.toBe(setup.url);
    // The silent sentinel is asked first, and held for the command timeout: 5 s, well past the announcement (down-after
    // 1 s, then the election), so the announcement comes while the client waits for it.
    const redis = connect(url, { commandTimeoutMs: 5_000 });
    clients.push(redis);
    const key = `${prefix}:{silent}:v`;
    await redis.set(key, "before");
    const sentinelAdmin = setup.sentinel.adminClient();
    await waitUntil("the client to listen for failovers through both ways", async () => {
      const clientList = (await sentinelAdmin.call("CLIENT", "LIST")) as string;
      return clientList.split("\n").filter((line) => / sub=[1-9]/.test(line)).length >= 2;
    });
    sentinelAdmin.disconnect();
    silent.blackhole();
    const old = setup.master;
    await old.kill();
    const promoted = await setup.waitForFailover(old, 30_000);
    const admin = promoted.adminClient();
    try {
      await waitUntil(
        "a call to succeed on the promoted replica",
        async () => {
          try {
            await redis.set(key, "after");
            return true;
          } catch {
            return false;
          }
        },
        { timeoutMs: 20_000, intervalMs: 100 },
      );
      expect(await admin.get(key)).toBe("after");
    } finally {
      admin.disconnect();
    }
  }, 90_000);

  it("a sentinel that goes away is reported to the observer, not logged as an unhandled error", async () => {
    setup = await startRedisSentinel({ replicas: 0 });
    const events: CoordisEvent[] = [];
    const logged = vi.spyOn(console, "error");
    const redis = connect(setup.url, { observer: { onEvent: (event) => events.push(event) } });
    clients.push(redis);
    // A connection a primitive opens itself (a subscriber, a blocking reader) comes from duplicate().
    const copy = (redis as Redis).duplicate();
    clients.push(copy);
    const key = `${prefix}:{gone}:v`;
    await redis.set(key, "1");
    await copy.get(key);
    // The client listens for failovers on a connection of its own to the sentinel: wait until it is subscribed.
    const sentinelAdmin = setup.sentinel.adminClient();
    await waitUntil("the client to subscribe to failovers", async () => {
      const clientList = (await sentinelAdmin.call("CLIENT", "LIST")) as string;
      return clientList.split("\n").filter((line) => / sub=[1-9]/.test(line)).length >= 2;
    });
    sentinelAdmin.disconnect();
    await setup.sentinel.kill();
    await waitUntil(
      "two refused reconnects to the sentinel",
      () => events.filter((e) => e.type === "connection-error" && /ECONNREFUSED/.test(String(e.error))).length >= 4,
      10_000,
    );
    expect(logged.mock.calls.filter((args) => String(args[0]).includes("Unhandled error event"))).toEqual([]);
    // The master itself is still there and still serves.
    await redis.set(key, "2");
    expect(await redis.get(key)).toBe("2");
  }, 60_000);
});
