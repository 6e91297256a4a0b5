import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { ConcurrencyLimiter } from "@coordis/ratelimit";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("rl-release-blip");

// permit.release() that gets no answer (a partition outlasting the command timeout) throws, as documented; the
// release is then sent again while Redis does not answer, as an unanswered acquire's undo is, so the slot is freed
// once Redis answers again instead of staying taken by nobody until ttlMs.
describe("ConcurrencyLimiter: a release lost in a blip", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let proxy: FaultProxy;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    admin = server.adminClient();
    await admin.ping();
    proxy = await startProxy({ target: server });
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  });

  it("throws RedisUnavailableError, and the slot is freed once Redis answers again, long before ttlMs", async () => {
    const own = connect(proxy.url, { commandTimeoutMs: 400, connectTimeoutMs: 300 });
    own.on("error", () => {});
    try {
      await own.ping();
      const cl = new ConcurrencyLimiter(own, { limit: 1, ttlMs: 60_000, prefix });
      const key = "blip";
      const zkey = `${prefix}:cl:{${key}}`;
      const permit = await cl.acquire(key);
      expect(permit).not.toBeNull();
      expect(await admin.zcard(zkey)).toBe(1);
      // A partition: the release never reaches Redis, and it times out.
      proxy.blackhole();
      await expect(permit?.release()).rejects.toBeInstanceOf(RedisUnavailableError);
      expect(await admin.zcard(zkey)).toBe(1);
      proxy.heal();
      // Redis answers again: the slot is given back (its lease has most of a minute left).
      await waitUntil("the slot to be released", async () => (await admin.zcard(zkey)) === 0, {
        timeoutMs: 10_000,
        intervalMs: 20,
      });
      const again = await cl.acquire(key);
      expect(again).not.toBeNull();
      expect(await again?.release()).toBe(true);
    } finally {
      proxy.heal();
      own.disconnect();
    }
  });

  // A permit extended with a longer ttlMs than the limiter's holds its slot for that longer lease: the release must be
  // sent again for that long too, or the slot stays taken by nobody until the extended lease ends.
  it("the slot is freed once Redis answers again, also after the limiter's ttlMs has passed", async () => {
    const own = connect(proxy.url, { commandTimeoutMs: 400, connectTimeoutMs: 300 });
    own.on("error", () => {});
    try {
      await own.ping();
      const cl = new ConcurrencyLimiter(own, { limit: 1, ttlMs: 500, prefix });
      const key = "extended";
      const zkey = `${prefix}:cl:{${key}}`;
      const permit = await cl.acquire(key);
      expect(permit).not.toBeNull();
      const firstLease = permit?.expiresAtMs ?? 0;
      expect(await permit?.extend(60_000)).toBe(true);
      proxy.blackhole();
      await expect(permit?.release()).rejects.toBeInstanceOf(RedisUnavailableError);
      // The outage outlasts the limiter's ttlMs (and the undo queue's longest pause, 1 s) but not the extended lease.
      await waitUntil(
        "the limiter's ttlMs to be long over (server time)",
        async () => {
          const [s, us] = (await admin.time()) as unknown as [string, string];
          return Number(s) * 1000 + Math.floor(Number(us) / 1000) > firstLease + 2_500;
        },
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      const score = Number(await admin.zscore(zkey, permit?.token ?? ""));
      expect(score).toBeGreaterThan(firstLease + 50_000); // the permit still holds the slot
      proxy.heal();
      await waitUntil("the slot to be released", async () => (await admin.zcard(zkey)) === 0, {
        timeoutMs: 8_000,
        intervalMs: 20,
      });
      const again = await cl.acquire(key);
      expect(again).not.toBeNull();
      expect(await again?.release()).toBe(true);
    } finally {
      proxy.heal();
      own.disconnect();
    }
  });
});
