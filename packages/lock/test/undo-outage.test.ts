import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Mutex, runOncePerTick, Semaphore } from "@coordis/lock";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * An acquisition (or a tick's claim) that ran on Redis but whose answer was lost in an outage longer than the command
 * timeout: its undo fails in the same outage. The grant used to stay for its whole TTL, held by nobody (a cron tick
 * stayed "running", then "abandoned", run by nobody); it must be freed once Redis answers again.
 */
describe("undo of an unanswered acquisition across an outage longer than the command timeout", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let admin: RedisClient;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ target: server });
    admin = server.adminClient();
    redis = connect(proxy.url, { commandTimeoutMs: 800 });
    redis.on("error", () => {});
    await Promise.all([admin.ping(), redis.ping()]);
  });
  beforeEach(async () => {
    // The scripts cached (an EVALSHA answered NOSCRIPT would need a second round trip).
    await (await new Mutex(redis, "warm", { prefix }).acquire()).release();
    await (await new Semaphore(redis, "warm", { prefix, permits: 1 }).acquire()).release();
    await runOncePerTick(redis, "warm", 1, () => "warm", { prefix });
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await proxy.close();
    await server.stop();
  });

  /**
   * Runs `call` so that Redis runs it but its answer is lost: the request reaches Redis 150 ms after it was sent, and
   * once it ran (`ran`) the link goes silent, past the call's failure and past one more command timeout (a PING sent
   * after it fails too, so the undo sent when the call failed did as well). Then the link is back.
   */
  async function answerLost(call: () => Promise<unknown>, ran: () => Promise<boolean>): Promise<unknown> {
    proxy.setLatency(150);
    const outcome = call().catch((e: unknown) => e);
    await waitUntil("the call to run on Redis", ran, 5_000);
    proxy.blackhole();
    proxy.setLatency(0);
    const err = await outcome;
    await expect(redis.ping()).rejects.toThrow();
    proxy.heal();
    return err;
  }

  it("Mutex: the lock is free again soon after the outage, not after its 30 s TTL", async () => {
    const key = `${prefix}:lock:{outage-mutex}`;
    const mutex = new Mutex(redis, "outage-mutex", { prefix, ttlMs: 30_000 });
    const err = await answerLost(
      () => mutex.tryAcquire(),
      async () => (await admin.exists(key)) === 1,
    );
    expect(err).toBeInstanceOf(RedisUnavailableError);
    await waitUntil("the phantom grant to be undone", async () => (await admin.exists(key)) === 0, 10_000);
    const lease = await mutex.acquire({ waitMs: 5_000 });
    expect(await lease.release()).toBe(true);
  });

  it("Semaphore: the permit is given back soon after the outage", async () => {
    const key = `${prefix}:sem:{outage-sem}`;
    const sem = new Semaphore(redis, "outage-sem", { prefix, permits: 1, ttlMs: 30_000 });
    const err = await answerLost(
      () => sem.tryAcquire(),
      async () => (await admin.zcard(key)) === 1,
    );
    expect(err).toBeInstanceOf(RedisUnavailableError);
    await waitUntil("the phantom permit to be undone", async () => (await admin.zcard(key)) === 0, 10_000);
    const permit = await sem.acquire({ waitMs: 5_000 });
    expect(await permit.release()).toBe(true);
  });

  it("runOncePerTick: the tick is claimable again soon after the outage, and runs", async () => {
    const record = `${prefix}:tick:{outage-tick}:t:42`;
    const err = await answerLost(
      () => runOncePerTick(redis, "outage-tick", 42, () => "ran", { prefix, ttlMs: 30_000 }),
      async () => (await admin.exists(record)) === 1,
    );
    expect(err).toBeInstanceOf(RedisUnavailableError);
    await waitUntil("the claim to be undone", async () => (await admin.exists(record)) === 0, 10_000);
    const again = await runOncePerTick(redis, "outage-tick", 42, () => "ran", { prefix, ttlMs: 30_000 });
    expect(again).toMatchObject({ ran: true, result: "ran" });
  });
});
