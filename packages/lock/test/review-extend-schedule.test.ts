import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Mutex } from "@coordis/lock";
import {
  type FaultProxy,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// Inside using(), lease.extend(ttlMs) to a longer time to live re-armed the automatic extension a third of that ttl
// from now. When that extension got no answer (a blip), the lease's deadline stayed where it was, before the re-armed
// timer: no automatic extension was tried again and the lease was lost, though Redis answered again long before.
describe("using(): lease.extend(longer ttlMs) that gets no answer", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ target: server });
    redis = connect(proxy.url, { commandTimeoutMs: 300 });
    redis.on("error", () => {});
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("the automatic extensions still come before the deadline: once Redis is back the lease is kept", async () => {
    const observer = recordObserver();
    const mutex = new Mutex(redis, "raise", { prefix, ttlMs: 3_000, observer });
    // The scripts cached and known to this client.
    const warm = await mutex.acquire();
    await warm.extend();
    await warm.release();
    const outcome = await mutex.using(async (lease) => {
      proxy.blackhole();
      await expect(lease.extend(9_000)).rejects.toBeInstanceOf(RedisUnavailableError);
      proxy.heal();
      await waitUntil("Redis to answer again", async () => (await redis.ping()) === "PONG", {
        timeoutMs: 5_000,
        intervalMs: 20,
        ignoreErrors: true,
      });
      // The lease still has most of its 3 s validity: an automatic extension must come, and succeed, before it ends.
      const from = observer.ops.length;
      const extended = () => observer.ops.slice(from).some((o) => o.op === "extend" && o.outcome === "ok");
      await waitUntil("an automatic extension, or the lease lost", () => lease.signal.aborted || extended(), 10_000);
      return { aborted: lease.signal.aborted, extended: extended() };
    });
    expect(outcome).toEqual({ aborted: false, extended: true });
  });
});
