import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, DurabilityError, type RedisClient } from "@coordis/core";
import { type Lease, Mutex, Semaphore } from "@coordis/lock";
import { type RedisSentinelSetup, startRedisSentinel, testPrefix, tryWaitUntil, waitUntil } from "@coordis/testing";
import { afterEach, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * Sentinel failover of the primary while locks are held: a master, one replica replicating through a fault proxy
 * (so a test can stop replication while both servers stay up; two replicas for the load test), one Sentinel (quorum 1, down-after 1 s). Each test
 * gets its own topology. The clients connect through Sentinel (`redis+sentinel://`) as the least-privilege user.
 */
describe("locks across a Sentinel failover", () => {
  let setup: RedisSentinelSetup | undefined;
  const clients: RedisClient[] = [];
  const client = () => {
    const c = connect(setup?.url, { commandTimeoutMs: 2_000 });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    await setup?.stop();
    setup = undefined;
  });
  const start = async (replicas = 1) => {
    setup = await startRedisSentinel({
      replicas,
      proxiedReplication: true,
      downAfterMs: 1_000,
      leastPrivilege: true,
    });
    return setup;
  };
  /** Waits until `key` on the replica equals `value` (replication has caught up to that write). */
  const replicated = async (s: RedisSentinelSetup, key: string, value: string) => {
    const admin = connect(s.replicas[0]?.adminUrl);
    clients.push(admin);
    await waitUntil(`${key} to reach ${value} on the replica`, async () => (await admin.get(key)) === value, {
      timeoutMs: 20_000,
      intervalMs: 20,
    });
  };
  const fenceKey = (name: string) => `${prefix}:lock:{${name}}:fence`;

  it("without durability, an acknowledged acquire the replica never received is lost: a second holder, same fence", async () => {
    const s = await start();
    const mutex = new Mutex(client(), "lost", { prefix, ttlMs: 60_000 });
    const first = await mutex.acquire();
    await first.release();
    await replicated(s, fenceKey("lost"), String(first.fence));

    // Replication stops reaching the replica; the primary keeps acknowledging writes.
    s.links[0]?.blackhole();
    const held = await mutex.acquire({ waitMs: 0 });
    expect(held.fence).toBe(first.fence + 1);

    await s.master.kill();
    const promoted = await s.waitForFailover(s.master);
    expect(promoted).toBe(s.replicas[0]);

    // The promoted replica never saw `held`: another holder gets the lock at once, while `held` is still valid,
    // and the same fence again.
    const other = new Mutex(client(), "lost", { prefix, ttlMs: 60_000 });
    const second = await other.acquire({ waitMs: 30_000 });
    expect(held.remainingMs()).toBeGreaterThan(30_000);
    expect(held.signal.aborted).toBe(false);
    expect(second.fence).toBeLessThanOrEqual(held.fence);
    expect(second.fence).toBe(held.fence);
  }, 120_000);

  it("with durability, an acquire the replica did not acknowledge fails with DurabilityError and is released", async () => {
    const s = await start();
    const durability = { replicas: 1, timeoutMs: 300 };
    const redis = client();
    const mutex = new Mutex(redis, "durable", { prefix, ttlMs: 10_000, durability });
    const sem = new Semaphore(redis, "durable", { prefix, ttlMs: 10_000, permits: 2, durability });
    const ok = await mutex.acquire();
    const okPermit = await sem.acquire();
    await ok.extend();
    await okPermit.extend();

    s.links[0]?.blackhole();
    await ok.release();
    const mutexError = await mutex.acquire({ waitMs: 0 }).catch((e: unknown) => e);
    expect(mutexError).toBeInstanceOf(DurabilityError);
    expect(mutexError).toMatchObject({
      code: "ERR_DURABILITY",
      reason: "timeout",
      replicasRequired: 1,
      replicasAcknowledged: 0,
      operation: "lock/acquire",
    });
    const semError = await sem.acquire({ waitMs: 0 }).catch((e: unknown) => e);
    expect(semError).toMatchObject({ code: "ERR_DURABILITY", replicasAcknowledged: 0, operation: "lock/sem-acquire" });
    // An extension that is not confirmed throws, and the lease keeps its earlier deadline.
    const before = okPermit.remainingMs();
    await expect(okPermit.extend()).rejects.toBeInstanceOf(DurabilityError);
    expect(okPermit.remainingMs()).toBeLessThanOrEqual(before);
    expect(okPermit.signal.aborted).toBe(false);

    // What the failed attempts won on the primary was released: only the first permit is held there.
    const master = connect(s.master.adminUrl);
    clients.push(master);
    expect(await master.exists(`${prefix}:lock:{durable}`)).toBe(0);
    expect(await master.zcard(`${prefix}:sem:{durable}`)).toBe(1);
  }, 120_000);

  it("with durability (replicas: 1), a primary killed under load: fences never go back, no two holders overlap", async () => {
    // Two replicas: after the failover the other one replicates from the promoted one, so durable acquisitions
    // (which need one acknowledging replica) resume.
    const s = await start(2);
    const ttlMs = 1_500;
    const durability = { replicas: 1, timeoutMs: 500 };
    type Held = { who: number; fence: number; reqAt: number; gotAt: number; until: number; releasedAt: number };
    const history: Held[] = [];
    const errors: Record<string, number> = {};
    let killedAt = Number.POSITIVE_INFINITY;
    let stop = false;
    const worker = async (who: number) => {
      const mutex = new Mutex(client(), "load", { prefix, ttlMs, durability });
      while (!stop) {
        const reqAt = performance.now();
        let lease: Lease;
        try {
          lease = await mutex.acquire({ waitMs: 5_000 });
        } catch (err) {
          const code = String((err as { code?: string }).code);
          errors[code] = (errors[code] ?? 0) + 1;
          await sleep(20);
          continue;
        }
        const gotAt = performance.now();
        const until = gotAt + lease.remainingMs();
        await sleep(Math.random() * 30);
        const releasedAt = performance.now();
        await lease.release().catch(() => false);
        history.push({ who, fence: lease.fence, reqAt, gotAt, until: Math.min(until, releasedAt), releasedAt });
      }
    };
    const running = [0, 1, 2, 3].map(worker);
    const end = performance.now() + 120_000;
    await tryWaitUntil(() => history.length >= 40, { timeoutMs: 120_000, intervalMs: 20 });
    killedAt = performance.now();
    // The replica is in sync (no blackhole): every acquire acknowledged durable is on it.
    await s.master.kill();
    await s.waitForFailover(s.master);
    await tryWaitUntil(() => history.filter((h) => h.reqAt > killedAt).length >= 40, {
      timeoutMs: Math.max(0, end - performance.now()),
      intervalMs: 20,
    });
    stop = true;
    await Promise.all(running);

    const after = history.filter((h) => h.reqAt > killedAt);
    expect(after.length, JSON.stringify(errors)).toBeGreaterThanOrEqual(40);
    // Fences are distinct and go up in real-time order: an acquisition requested after another returned has a
    // higher fence, across the failover.
    expect(new Set(history.map((h) => h.fence)).size).toBe(history.length);
    for (const a of history) {
      for (const b of history) {
        if (b.reqAt > a.gotAt) expect(b.fence, `fence ${b.fence} after ${a.fence}`).toBeGreaterThan(a.fence);
      }
    }
    // No two leases valid at once (a lease counts from acquire's return to the earlier of validity and release).
    const sorted = [...history].sort((x, y) => x.gotAt - y.gotAt);
    let open = sorted[0] as Held;
    for (const cur of sorted.slice(1)) {
      expect(cur.gotAt, `fence ${cur.fence} while ${open.fence} held`).toBeGreaterThanOrEqual(open.until);
      if (cur.until > open.until) open = cur;
    }
  }, 240_000);
});
