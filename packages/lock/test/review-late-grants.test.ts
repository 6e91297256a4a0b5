import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { LockBusyError, Redlock } from "@coordis/lock";
import { type RedisGroup, type RedisServer, startRedisGroup, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

// A Redlock round waits up to nodeTimeoutMs for a master that does not answer. When that outlasts the lease's
// validity, every grant comes back expired and is given back: the lock is free, yet nobody gets it. acquire() must
// say so (and what to change), not that someone else holds the lock; and the default nodeTimeoutMs must never be
// such a wait.
describe("Redlock with one master not answering: grants that come back after their validity", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  let silent: RedisServer;
  beforeAll(async () => {
    group = await startRedisGroup(3);
    clients = group.urls.map((u) => connect(u, { commandTimeoutMs: 2_000 }));
    await Promise.all(clients.map((c) => c.ping()));
    // Scripts cached on every master before one of them stops answering.
    await (await new Redlock(clients, "warm", { prefix }).acquire()).release();
    silent = group.servers[2] as RedisServer;
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await group.stop();
  });

  it("a nodeTimeoutMs longer than the lease: acquire() rejects saying the grants came too late, not LockBusyError", async () => {
    const lock = new Redlock(clients, "late", { prefix, ttlMs: 200, nodeTimeoutMs: 400 });
    silent.pause();
    let err: unknown;
    try {
      err = await lock.acquire({ waitMs: 300 }).catch((e: unknown) => e);
    } finally {
      silent.resume();
    }
    expect(err).not.toBeInstanceOf(LockBusyError);
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toMatch(/Redlock "late".*after its validity.*nodeTimeoutMs \(400 ms\)/);
    // Nobody held it: a lock whose masters all answer is free at once.
    const lease = await lock.tryAcquire();
    expect(lease).not.toBeNull();
    await lease?.release();
  });

  it("the default nodeTimeoutMs leaves a short lease valid: with one master silent it is still acquired", async () => {
    // ttlMs 50: validity 48 ms; a default wait of 50 ms for the silent master would outlast it.
    const lock = new Redlock(clients, "short", { prefix, ttlMs: 50 });
    silent.pause();
    try {
      const lease = await lock.acquire({ waitMs: 5_000 });
      expect(lease.fence).toBeGreaterThan(0);
      await lease.release().catch(() => false);
    } finally {
      silent.resume();
    }
  });
});
