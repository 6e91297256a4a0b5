import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Mutex, Semaphore } from "@coordis/lock";
import { eventually, type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// lease.extend(ttlMs) with a time to live shorter than what the lease has left, and no answer: Redis may have run it
// (the reply was lost, not the command), so its key may expire ttlMs after the call. The lease must not go on
// claiming the longer validity it had: another holder can get the lock once Redis' shorter TTL runs out.
describe("an unanswered extend() to a shorter time to live", () => {
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

  it.each([
    ["Mutex", (c: RedisClient) => new Mutex(c, "short-m", { prefix, ttlMs: 60_000 })],
    ["Semaphore", (c: RedisClient) => new Semaphore(c, "short-s", { prefix, permits: 1, ttlMs: 60_000 })],
  ] as const)(
    "%s: once another holder can have the lock, the lease reads as lost (its validity is no longer the old one)",
    async (_kind, make) => {
      const lease = await make(slow).acquire();
      await lease.extend(); // the script is cached by Redis and known to run on this client
      expect(lease.remainingMs()).toBeGreaterThan(50_000);
      // The command reaches Redis (after 250 ms) and runs; its reply would come back after the command timeout.
      proxy.setLatency(250);
      await expect(lease.extend(1_000)).rejects.toBeInstanceOf(RedisUnavailableError);
      proxy.setLatency(0);
      // Redis ran the extension: the lock is free about a second later, and another replica takes it.
      const other = await eventually("another holder to get the lock", () => make(direct).tryAcquire(), {
        timeoutMs: 10_000,
        intervalMs: 20,
      });
      try {
        // Mutual exclusion while the lease is valid: this lease must not still be valid now.
        expect(lease.remainingMs()).toBe(0);
        expect(lease.signal.aborted).toBe(true);
      } finally {
        await other.release();
        await lease.release().catch(() => false);
      }
    },
  );
});
