import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { ConcurrencyLimiter } from "@coordis/ratelimit";
import { eventually, type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** Redis server time, ms. */
async function serverNow(redis: RedisClient): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

// permit.extend(ttlMs) with a time to live shorter than what the permit has left, and no answer: Redis may have run
// it (the reply was lost, not the command), so the permit may end ttlMs after the call. expiresAtMs must not go on
// announcing the longer lease: another caller can take the slot once Redis' shorter one runs out.
describe("an unanswered permit.extend() to a shorter time to live", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  /** Through the fault proxy, with a short command timeout. */
  let slow: RedisClient;
  /** Straight to the server: another replica. */
  let direct: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    slow = connect(proxy.url, { commandTimeoutMs: 300 });
    slow.on("error", () => {});
    direct = server.client();
    await Promise.all([slow.ping(), direct.ping()]);
  });
  afterAll(async () => {
    slow.disconnect();
    direct.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("expiresAtMs is no later than the shorter lease the renewal may have set", async () => {
    const limiter = new ConcurrencyLimiter(slow, { prefix, limit: 1, ttlMs: 60_000 });
    const permit = await limiter.acquire("upload");
    if (permit === null) throw new Error("expected a permit");
    expect(await permit.extend()).toBe(true); // the script is cached by Redis and known to run on this client
    const before = permit.expiresAtMs;
    // The command reaches Redis (after 250 ms) and runs; its reply would come back after the command timeout.
    proxy.setLatency(250);
    await expect(permit.extend(1_000)).rejects.toBeInstanceOf(RedisUnavailableError);
    proxy.setLatency(0);
    // Redis ran the renewal (the proxy forwarded it before the timeout): the permit's score is about a second away.
    const score = await eventually("Redis to run the renewal", async () => {
      const s = await direct.zscore(`${prefix}:cl:{upload}`, permit.token);
      return s !== null && Number(s) < before - 30_000 ? Number(s) : undefined;
    });
    const now = await serverNow(direct);
    expect(score).toBeLessThanOrEqual(now + 1_000);
    // What the permit announces is no later than what Redis holds (the slot is someone else's from then on).
    expect(permit.expiresAtMs).toBeLessThanOrEqual(score);
    expect(permit.expiresAtMs).toBeGreaterThan(now - 1_000);
    await permit.release();
  });

  it("a renewal that was answered sets expiresAtMs to what Redis holds", async () => {
    const limiter = new ConcurrencyLimiter(direct, { prefix, limit: 1, ttlMs: 60_000 });
    const permit = await limiter.acquire("answered");
    if (permit === null) throw new Error("expected a permit");
    expect(await permit.extend(2_000)).toBe(true);
    const score = Number(await direct.zscore(`${prefix}:cl:{answered}`, permit.token));
    expect(permit.expiresAtMs).toBe(score);
    await permit.release();
  });
});
