import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { LeaseLostError, LockBusyError, Redlock } from "@coordis/lock";
import {
  eventually,
  type RedisGroup,
  type RedisServer,
  recordObserver,
  startRedisGroup,
  testPrefix,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("Redlock review", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  let silent: RedisServer;
  beforeAll(async () => {
    group = await startRedisGroup(3);
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 5_000 }));
    await Promise.all(clients.map((c) => c.ping()));
    // Scripts cached on every master before one of them stops answering.
    const warm = await new Redlock(clients, "warm", { prefix }).acquire();
    await warm.extend();
    await warm.release();
    silent = group.servers[2] as RedisServer;
  });
  afterAll(async () => {
    if (silent.paused) silent.resume();
    for (const c of clients) c.disconnect();
    await group.stop();
  });

  // forEach skips the holes of a sparse array: [a, , c] passed validation as three masters, and the first acquire
  // crashed the process (a TypeError thrown in a promise handler, unhandled).
  it("a sparse nodes array is refused with InvalidArgumentError naming the hole, before anything is sent", () => {
    const [a, b] = clients as [RedisClient, RedisClient];
    // biome-ignore lint/suspicious/noSparseArray: the bad input under test
    const sparse = [a, , b] as unknown as RedisClient[];
    expect(() => new Redlock(sparse, "sparse", { prefix })).toThrow(InvalidArgumentError);
    expect(() => new Redlock(sparse, "sparse", { prefix })).toThrow(/nodes\[1\]/);
  });

  // Two extensions out at once, the second to a shorter time to live: every master runs them in that order, so Redis
  // ends with the short one. With one master silent, a round ends a while after its quorum answered (about as long
  // again as it took), so the first round, out longer, settled last and set the lease's deadline from its long time
  // to live: the lease read 28 s of validity while another holder had the lock.
  it("extend() then extend(shorter) with one master silent: the lease keeps the shorter validity Redis holds", async () => {
    const lock = new Redlock(clients, "overlap", { prefix, ttlMs: 30_000, nodeTimeoutMs: 200 });
    silent.pause();
    try {
      const lease = await lock.acquire();
      const long = lease.extend(); // the lock's 30 s
      const blockedUntil = performance.now() + 30; // the event loop busy for 30 ms between the two calls
      while (performance.now() < blockedUntil) {
        // busy
      }
      const short = lease.extend(1_000);
      await Promise.all([long, short]);
      expect(lease.remainingMs()).toBeLessThanOrEqual(1_000);
      // Redis' TTL is the short one: another holder gets the lock about a second later.
      const other = await eventually("another holder to get the lock", () => lock.tryAcquire(), {
        timeoutMs: 10_000,
        intervalMs: 20,
      });
      try {
        // Mutual exclusion while the lease is valid: the first lease must not still read as valid.
        expect(lease.remainingMs()).toBe(0);
        expect(lease.signal.aborted).toBe(true);
      } finally {
        await other.release().catch(() => false);
      }
    } finally {
      silent.resume();
    }
  });
  // An extension sent while the lease's release is out runs behind it on every master and finds the token gone. With
  // one master silent, its round ended before the release's (about as long again as each took): the released lease
  // was reported lost (a lease-lost event, extend "lost") and its signal aborted with LeaseLostError, not AbortError.
  it("extend() while release() is out: the release is not reported as a lost lease", async () => {
    const observer = recordObserver();
    const lock = new Redlock(clients, "extend-released", { prefix, ttlMs: 30_000, nodeTimeoutMs: 200, observer });
    silent.pause();
    try {
      const lease = await lock.acquire();
      const signal = lease.signal;
      const released = lease.release();
      const blockedUntil = performance.now() + 30; // the event loop busy for 30 ms between the two calls
      while (performance.now() < blockedUntil) {
        // busy
      }
      const extended = lease.extend().catch((e: unknown) => e);
      expect(await released).toBe(true);
      expect(await extended).toBeInstanceOf(LeaseLostError);
      expect(signal.reason).toBeInstanceOf(DOMException);
      expect((signal.reason as DOMException).name).toBe("AbortError");
      expect(observer.events.filter((e) => e.type === "lease-lost")).toEqual([]);
    } finally {
      silent.resume();
    }
  });
  // With durability, a master's reply failed with the DurabilityError whenever its replicas did not confirm in time,
  // also when its script wrote nothing: a lock held by someone else then read as a DurabilityError (retried until
  // waitMs, reported "error"), where a Mutex says LockBusyError. These masters have no replica: nothing is confirmed.
  it("durability: a lock held elsewhere is busy (LockBusyError), not a DurabilityError", async () => {
    const holder = await new Redlock(clients, "durable-busy", { prefix }).acquire();
    try {
      const durable = new Redlock(clients, "durable-busy", { prefix, durability: { replicas: 1, timeoutMs: 50 } });
      await expect(durable.acquire({ waitMs: 0 })).rejects.toBeInstanceOf(LockBusyError);
      expect(await durable.tryAcquire()).toBeNull();
    } finally {
      await holder.release();
    }
  });
});
