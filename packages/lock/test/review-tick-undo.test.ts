import { connect, type RedisClient } from "@coordis/core";
import { LeaseLostError, runOncePerTick } from "@coordis/lock";
import {
  type FaultProxy,
  type RedisServer,
  stallServer,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// A claim answered after its lease's validity is undone and fn not called (README: "claim undone"). The undo was sent
// once: lost in an outage, the claim stayed "running" under a token nobody held, then "abandoned", and without
// retryOnError the tick never ran, though nobody had run it.
describe("runOncePerTick: the undo of a late claim, lost in an outage", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let admin: RedisClient;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ target: server });
    admin = server.adminClient();
    redis = connect(proxy.url, { commandTimeoutMs: 1_000 });
    redis.on("error", () => {});
    await Promise.all([admin.ping(), redis.ping()]);
    // The scripts cached on the server and known to this client.
    await runOncePerTick(redis, "warm", 1, () => "warm", { prefix });
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("is sent again once Redis answers: the claim is gone and the tick runs on the next call", async () => {
    const record = `${prefix}:tick:{late-undo}:t:7`;
    let calls = 0;
    const fn = () => {
      calls++;
      return "ran";
    };
    // 300 ms each way, and the server busy for 600 ms: the claim runs at about 600 ms and its answer arrives after
    // the 300 ms lease. The undo then sent is cut off by a partition before it reaches Redis.
    proxy.setLatency(300);
    const stalled = stallServer(admin, 600);
    const outcome = runOncePerTick(redis, "late-undo", 7, fn, { prefix, ttlMs: 300 }).catch((e: unknown) => e);
    await waitUntil("the claim to run", async () => (await admin.exists(record)) === 1, 5_000);
    const before = proxy.stats().bytesToClients;
    await waitUntil("the claim's answer to reach the client", () => proxy.stats().bytesToClients > before, 5_000);
    proxy.blackhole();
    const err = await outcome;
    await stalled;
    expect(err).toBeInstanceOf(LeaseLostError);
    expect(err).toMatchObject({ reason: "expired" });
    expect(calls).toBe(0);
    proxy.setLatency(0);
    proxy.heal();
    await waitUntil("the late claim to be undone", async () => (await admin.exists(record)) === 0, 10_000);
    expect(await runOncePerTick(redis, "late-undo", 7, fn, { prefix, ttlMs: 300 })).toMatchObject({
      ran: true,
      state: "ok",
      result: "ran",
    });
    expect(calls).toBe(1);
  });
});
