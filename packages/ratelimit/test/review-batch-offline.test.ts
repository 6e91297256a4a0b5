import { connect, type RedisClient } from "@coordis/core";
import { RateLimiter } from "@coordis/ratelimit";
import { type FaultProxy, startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const adminUrl = inject("coordisAdminRedisUrl");
const prefix = testPrefix("rl-batch-offline");

// A batched consume is queued while the client is connected and sent later (maxDelayMs, or the end of the turn). When
// the connection went down in between, the batch must not be handed to the reconnecting client, which would hold it
// in its offline queue and run it on Redis once it is back, long after the failure policy answered the caller.
describe("batched consume: the connection drops between the call and the batch's send", () => {
  let proxy: FaultProxy;
  let admin: RedisClient;
  beforeAll(async () => {
    proxy = await startProxy({ target: url });
    admin = connect(adminUrl);
  });
  afterAll(async () => {
    admin.disconnect();
    await proxy.close();
  });

  it.each(["fail-closed", "fail-open"] as const)(
    "%s: the policy decides at once and nothing reaches Redis afterwards",
    async (policy) => {
      const own = connect(proxy.url, { commandTimeoutMs: 400, connectTimeoutMs: 300 });
      own.on("error", () => {});
      await own.ping();
      const rl = new RateLimiter(own, {
        rules: [{ name: "b", limit: 5, windowMs: 600_000 }],
        prefix,
        onRedisError: policy,
        redisRetryMs: 0,
        batch: { maxDelayMs: 500 },
      });
      const key = `drop-${policy}`;
      try {
        expect(await rl.consume(key)).toMatchObject({ reason: "redis", remaining: 4 });
        // Queued in the batcher while the client is ready; its batch leaves 500 ms later.
        const pending = rl.consume(key);
        proxy.refuse();
        proxy.dropConnections();
        await waitUntil("the client to be reconnecting", () => own.status === "reconnecting", {
          timeoutMs: 10_000,
          intervalMs: 5,
        });
        const decided = await pending;
        expect(decided.reason).toBe(policy);
        await proxy.accept();
        await waitUntil("the client to reconnect", () => own.status === "ready", { timeoutMs: 10_000, intervalMs: 20 });
        // Whatever the client still held for Redis has run once it is ready again: a PING on the same connection is
        // answered after it.
        await own.ping();
        // Redis counted the call before the outage only.
        const stored = await admin.get(`${prefix}:rl:{${key}}`);
        expect(stored).toMatch(/:1$/);
        expect(await rl.consume(key)).toMatchObject({ reason: "redis", remaining: 3 });
      } finally {
        await proxy.accept();
        own.disconnect();
      }
    },
  );
});
