import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { ConcurrencyLimiter } from "@coordis/ratelimit";
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

const prefix = testPrefix("rl-phantom");

// The README: an acquire that fails without an answer may still run on Redis and take a slot for a token nobody
// holds; the release queued behind it "frees the slot as soon as Redis answers again". That release can meet the
// same outage as the acquire (a partition outlasting the command timeout): it must be sent again until Redis answers,
// not dropped after one attempt, leaving the slot taken for the whole ttlMs.
describe("ConcurrencyLimiter: the phantom permit of an unanswered acquire, the outage outlasting the first release", () => {
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

  it("the slot is freed once Redis answers again, long before ttlMs", async () => {
    const own = connect(proxy.url, { commandTimeoutMs: 500, connectTimeoutMs: 300 });
    own.on("error", () => {});
    try {
      await own.ping();
      const cl = new ConcurrencyLimiter(own, { limit: 1, ttlMs: 60_000, prefix });
      const key = "phantom";
      const zkey = `${prefix}:cl:{${key}}`;
      // Warm the script cache: the acquire below is one EVALSHA.
      expect(await (await cl.acquire(key))?.release()).toBe(true);

      // The server stalls 1.5 s; the acquire queued behind the stall on the same connection reaches Redis (and runs
      // when the stall ends), but a partition begins right after it went through: its reply, and the release the
      // client sends when the acquire times out (500 ms), are lost.
      const sent0 = proxy.stats().bytesToTarget;
      const stall = stallServer(own, 1_500).catch(() => "timed out");
      await waitUntil("the stall to reach Redis", () => proxy.stats().bytesToTarget > sent0, {
        timeoutMs: 5_000,
        intervalMs: 1,
      });
      const sent1 = proxy.stats().bytesToTarget;
      const acquiring = cl.acquire(key);
      acquiring.catch(() => {});
      await waitUntil("the acquire to reach Redis", () => proxy.stats().bytesToTarget > sent1, {
        timeoutMs: 5_000,
        intervalMs: 1,
      });
      proxy.blackhole();
      await expect(acquiring).rejects.toBeInstanceOf(RedisUnavailableError);
      await stall;
      // The acquire ran once the stall ended: a slot taken for a token nobody holds, for a minute.
      await waitUntil("the phantom permit to be taken", async () => (await admin.zcard(zkey)) === 1, {
        timeoutMs: 10_000,
        intervalMs: 10,
      });
      // The partition ends; the client's connection, which lost bytes, is reset and it reconnects.
      proxy.heal();
      await waitUntil(
        "the client to answer again",
        () =>
          own.ping().then(
            () => true,
            () => false,
          ),
        { timeoutMs: 10_000, intervalMs: 20 },
      );
      // Redis answers again: the phantom permit is released (its lease has 58 s left).
      await waitUntil("the phantom permit to be released", async () => (await admin.zcard(zkey)) === 0, {
        timeoutMs: 8_000,
        intervalMs: 20,
      });
      const permit = await cl.acquire(key);
      expect(permit).not.toBeNull();
      expect(await permit?.release()).toBe(true);
    } finally {
      proxy.heal();
      own.disconnect();
    }
  });
});
