import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient, runScript } from "@coordis/core";
import { type Lease, LeaseLostError, LockBusyError, Mutex, Semaphore } from "@coordis/lock";
import { recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { lockScripts } from "../src/scripts.generated.js";

const prefix = testPrefix();

const topologies: Array<[string, () => string]> = [
  ["standalone", () => inject("coordisRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl")],
];

describe.each(topologies)("Mutex and Semaphore on %s", (topology, url) => {
  let redis: RedisClient;
  let other: RedisClient;
  beforeAll(async () => {
    redis = connect(url());
    other = connect(url());
    await Promise.all([redis.ping(), other.ping()]);
  });
  afterAll(() => {
    redis.disconnect();
    other.disconnect();
  });

  it("grants one holder at a time, with strictly increasing fences, and releases by token", async () => {
    const a = new Mutex(redis, `${topology}-basic`, { prefix, ttlMs: 10_000 });
    const b = new Mutex(other, `${topology}-basic`, { prefix, ttlMs: 10_000 });
    const first = await a.acquire();
    expect(first.name).toBe(`${topology}-basic`);
    expect(first.token).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(await b.tryAcquire()).toBeNull();
    const busy = await b.acquire({ waitMs: 0 }).catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(LockBusyError);
    expect((busy as LockBusyError).code).toBe("ERR_LOCK_BUSY");
    expect(first.signal.aborted).toBe(false);
    expect(await first.release()).toBe(true);
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).not.toBeInstanceOf(LeaseLostError);
    expect(await first.release()).toBe(false);
    const second = await b.acquire();
    expect(second.fence).toBeGreaterThan(first.fence);
    await expect(first.extend()).rejects.toBeInstanceOf(LeaseLostError);
    expect(await second.release()).toBe(true);
    const third = (await a.tryAcquire()) as Lease;
    expect(third.fence).toBe(second.fence + 1);
    await third.release();
  });

  it("waits for a busy lock and gets it once released; gives up with LockBusyError after waitMs", async () => {
    const a = new Mutex(redis, `${topology}-wait`, { prefix, ttlMs: 10_000 });
    const b = new Mutex(other, `${topology}-wait`, { prefix, ttlMs: 10_000 });
    const held = await a.acquire();
    const started = Date.now();
    const err = await b.acquire({ waitMs: 300 }).catch((e: unknown) => e);
    const waited = Date.now() - started;
    expect(err).toBeInstanceOf(LockBusyError);
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(2_000);
    const waiting = b.acquire({ waitMs: 5_000 });
    await sleep(50);
    await held.release();
    const got = await waiting;
    expect(got.fence).toBeGreaterThan(held.fence);
    await got.release();
  });

  it("honours an AbortSignal at once, before and during waiting, and leaves nothing held", async () => {
    const a = new Mutex(redis, `${topology}-abort`, { prefix, ttlMs: 10_000 });
    const b = new Mutex(other, `${topology}-abort`, { prefix, ttlMs: 10_000 });
    const held = await a.acquire();
    const pre = new AbortController();
    pre.abort(new Error("cancelled before"));
    await expect(b.acquire({ signal: pre.signal })).rejects.toThrow("cancelled before");
    const ctl = new AbortController();
    const started = Date.now();
    const pending = b.acquire({ waitMs: 10_000, signal: ctl.signal });
    setTimeout(() => ctl.abort(new Error("shutdown")), 100);
    await expect(pending).rejects.toThrow("shutdown");
    expect(Date.now() - started).toBeLessThan(1_000);
    // Any reason, null included, is what the call rejects with (not taken for a Redis failure).
    for (const reason of [null, 0, ""]) {
      const observed: string[] = [];
      const c = new Mutex(other, `${topology}-abort`, {
        prefix,
        ttlMs: 10_000,
        observer: { onOperation: (op) => void observed.push(op.outcome) },
      });
      const abort = new AbortController();
      const waiting = c.acquire({ waitMs: 10_000, signal: abort.signal });
      abort.abort(reason);
      const got = await waiting.then(
        () => "acquired",
        (e: unknown) => e,
      );
      expect(got).toBe(reason);
      expect(observed).toEqual(["aborted"]);
    }
    await held.release();
    // The lock is free: nothing the aborted waiter did kept it.
    const after = await b.tryAcquire();
    expect(after).not.toBeNull();
    await after?.release();
  });

  it("extends a lease while held; an expired lease aborts its signal and release() returns false", async () => {
    const m = new Mutex(redis, `${topology}-expire`, { prefix, ttlMs: 200 });
    const lease = await m.acquire();
    await lease.extend(2_000);
    expect(lease.remainingMs()).toBeGreaterThan(1_000);
    await lease.extend(150);
    await waitUntil("the lease to be lost", () => lease.signal.aborted);
    expect(lease.signal.reason).toBeInstanceOf(LeaseLostError);
    expect((lease.signal.reason as LeaseLostError).code).toBe("ERR_LEASE_LOST");
    await waitUntil(
      "the mutex to be free",
      async () => (await m.tryAcquire().then((l) => l?.release() ?? false)) === true,
    );
    expect(await lease.release()).toBe(false);
  });

  // TTL 900 ms (extended every 300 ms): a loaded 2-core machine can stall the process or Redis for a few hundred
  // ms, which a 300-ms TTL did not survive (the lease was then correctly lost, failing this test's premise).
  it("using(): auto-extends a job running over 3x the TTL, keeps others out, releases, returns the result", async () => {
    const m = new Mutex(redis, `${topology}-using`, { prefix, ttlMs: 900 });
    const rival = new Mutex(other, `${topology}-using`, { prefix, ttlMs: 900 });
    let rivalWins = 0;
    let aborted = false;
    const result = await m.using(async (lease) => {
      const until = Date.now() + 3_000;
      while (Date.now() < until) {
        if (await rival.tryAcquire()) rivalWins++;
        await sleep(50);
      }
      aborted = lease.signal.aborted;
      return lease.fence;
    });
    expect(rivalWins).toBe(0);
    expect(aborted).toBe(false);
    expect(typeof result).toBe("number");
    const after = await rival.tryAcquire();
    expect(after?.fence).toBeGreaterThan(result);
    await after?.release();
  });

  it("using(): a shorter TTL given to lease.extend() is kept alive by the automatic extensions", async () => {
    // The lock's ttlMs would extend every 2 s; the lease's new 900 ms would run out long before that.
    const name = `${topology}-shorter`;
    const m = new Mutex(redis, name, { prefix, ttlMs: 6_000 });
    const rival = new Mutex(other, name, { prefix, ttlMs: 6_000 });
    const seen = await m.using(async (lease) => {
      await lease.extend(900);
      const ttls: number[] = [];
      let rivalWins = 0;
      const until = Date.now() + 2_500;
      while (Date.now() < until) {
        ttls.push(await other.pttl(`${prefix}:lock:{${name}}`));
        if (await rival.tryAcquire()) rivalWins++;
        await sleep(100);
      }
      return { ttls, rivalWins, aborted: lease.signal.aborted };
    });
    expect(seen.rivalWins).toBe(0);
    expect(seen.aborted).toBe(false);
    // Every automatic extension renewed to the lease's own 900 ms, not to the lock's 6 s.
    expect(Math.max(...seen.ttls)).toBeLessThanOrEqual(900);
    expect(Math.min(...seen.ttls)).toBeGreaterThan(0);
  });

  it("lease.extend(ttl) makes ttl the time to live that a bare extend() and later ones renew to", async () => {
    const name = `${topology}-extend-ttl`;
    const key = `${prefix}:lock:{${name}}`;
    const lease = await new Mutex(redis, name, { prefix, ttlMs: 60_000 }).acquire();
    await lease.extend(5_000);
    expect(await other.pttl(key)).toBeLessThanOrEqual(5_000);
    await lease.extend();
    const ttl = await other.pttl(key);
    expect(ttl).toBeGreaterThan(4_000);
    expect(ttl).toBeLessThanOrEqual(5_000);
    expect(lease.remainingMs()).toBeLessThanOrEqual(5_000);
    expect(await lease.release()).toBe(true);
  });

  it("using(): surfaces the routine's own error unchanged and still releases", async () => {
    const m = new Mutex(redis, `${topology}-using-err`, { prefix, ttlMs: 5_000 });
    class RoutineError extends Error {}
    const boom = new RoutineError("routine failed");
    const err = await m
      .using(async () => {
        throw boom;
      })
      .catch((e: unknown) => e);
    expect(err).toBe(boom);
    const again = await m.tryAcquire();
    expect(again).not.toBeNull();
    await again?.release();
  });

  it("using(): when an auto-extension finds the lock gone, lease.signal aborts with LeaseLostError", async () => {
    const name = `${topology}-stolen`;
    // The first extension comes at ttlMs / 3; the ttl leaves a loaded machine 2 s more before the lease would expire
    // on its own (reason "expired" instead).
    const m = new Mutex(redis, name, { prefix, ttlMs: 3_000 });
    const reason = await m.using(async (lease) => {
      await other.del(`${prefix}:lock:{${name}}`);
      await new Promise((resolve) => lease.signal.addEventListener("abort", resolve, { once: true }));
      return lease.signal.reason as LeaseLostError;
    });
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect(reason.reason).toBe("not-held");
  });

  it("reports acquire outcomes, extensions and lost leases to the observer", async () => {
    const observer = recordObserver();
    const { ops } = observer;
    const m = new Mutex(redis, `${topology}-obs`, { prefix, ttlMs: 150, observer });
    const lease = await m.acquire();
    await lease.extend();
    expect(await m.tryAcquire()).toBeNull();
    await m.acquire({ waitMs: 20 }).catch(() => {});
    await waitUntil("the lease to be lost", () => lease.signal.aborted);
    const outcomes = ops.filter((o) => o.op === "acquire").map((o) => o.outcome);
    expect(outcomes).toEqual(["acquired", "busy", "timeout"]);
    expect(ops.find((o) => o.op === "extend")?.outcome).toBe("ok");
    expect(ops.every((o) => o.primitive === "lock" && o.durationMs >= 0)).toBe(true);
    expect(observer.events.map((e) => e.type)).toContain("lease-lost");
  });

  it("Semaphore: at most `permits` leases, each expiring by server time, extend and release per lease", async () => {
    const sem = new Semaphore(redis, `${topology}-sem`, { prefix, permits: 3, ttlMs: 400 });
    const sem2 = new Semaphore(other, `${topology}-sem`, { prefix, permits: 3, ttlMs: 400 });
    const leases = await Promise.all([sem.acquire(), sem2.acquire(), sem.acquire()]);
    const fences = leases.map((l) => l.fence).sort((x, y) => x - y);
    expect(new Set(fences).size).toBe(3);
    expect(await sem2.tryAcquire()).toBeNull();
    await expect(sem2.acquire({ waitMs: 0 })).rejects.toBeInstanceOf(LockBusyError);
    expect(await leases[0]?.release()).toBe(true);
    const fourth = (await sem2.acquire({ waitMs: 0 })) as Lease;
    expect(fourth.fence).toBeGreaterThan(Math.max(...fences));
    // Keep one permit alive by extending; let the two others expire (server time decides).
    await leases[1]?.extend(5_000);
    await fourth.extend(5_000);
    await waitUntil("the third lease to expire", () => leases[2]?.signal.aborted === true);
    const fresh = await sem.acquire({ waitMs: 2_000 });
    expect(await sem.tryAcquire()).toBeNull();
    expect(await leases[2]?.release()).toBe(false);
    expect(await leases[1]?.release()).toBe(true);
    expect(await fourth.release()).toBe(true);
    expect(await fresh.release()).toBe(true);
  });

  it("Semaphore: the holders key lives as long as its longest permit, and gets a TTL again once purged empty", async () => {
    const name = `${topology}-sem-ttl`;
    const key = `${prefix}:sem:{${name}}`;
    const long = await new Semaphore(redis, name, { prefix, permits: 3, ttlMs: 60_000 }).acquire();
    expect(await redis.pttl(key)).toBeGreaterThan(50_000);
    // A shorter permit, taken or extended later, never shortens the key below the longest permit.
    const short = await new Semaphore(other, name, { prefix, permits: 3, ttlMs: 1_000 }).acquire();
    await short.extend(2_000);
    expect(await redis.pttl(key)).toBeGreaterThan(50_000);
    expect(await short.release()).toBe(true);
    // The long permit shrinks to 150 ms and expires; the next acquire purges the set empty (Redis deletes the key)
    // and the new key must expire again.
    await long.extend(150);
    await waitUntil("the long permit to expire on server time", async () => {
      const [seconds, micros] = await redis.time();
      const now = Number(seconds) * 1000 + Number(micros) / 1000;
      return (await (redis as Redis).zrange(key, "-inf", String(now), "BYSCORE")).length === 1;
    });
    const next = await new Semaphore(other, name, { prefix, permits: 3, ttlMs: 5_000 }).acquire();
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
    expect(await long.release()).toBe(false);
    expect(await next.release()).toBe(true);
  });

  it("Semaphore: a holders key without a TTL (written by something else) gets one on the next acquire and extend", async () => {
    const name = `${topology}-sem-no-ttl`;
    const key = `${prefix}:sem:{${name}}`;
    const [seconds] = await redis.time();
    // A foreign write: a live permit in a key that has no TTL.
    await (redis as Redis).zadd(key, Number(seconds) * 1000 + 30_000, "foreign");
    expect(await redis.pttl(key)).toBe(-1);
    const mine = await new Semaphore(other, name, { prefix, permits: 3, ttlMs: 5_000 }).acquire();
    const afterAcquire = await redis.pttl(key);
    expect(afterAcquire).toBeGreaterThan(0);
    expect(afterAcquire).toBeLessThanOrEqual(5_000);
    // The key re-written without a TTL while the permit is held: extending gives it one again.
    const members = await (redis as Redis).zrange(key, "0", "-1", "WITHSCORES");
    await redis.del(key);
    for (let i = 0; i < members.length; i += 2) {
      await (redis as Redis).zadd(key, members[i + 1] as string, members[i] as string);
    }
    expect(await redis.pttl(key)).toBe(-1);
    await mine.extend(8_000);
    const afterExtend = await redis.pttl(key);
    expect(afterExtend).toBeGreaterThan(5_000);
    expect(afterExtend).toBeLessThanOrEqual(8_000);
    expect(await mine.release()).toBe(true);
  });

  it("Semaphore release judges a permit's expiry on server time, however far it lies from now", async () => {
    const key = `${prefix}:sem:{${topology}-sem-expiry}`;
    const [seconds, micros] = await redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    // Seconds away, 1 ms past, and an expiry of another length than today's (compared as numbers).
    const expiries: Record<string, number> = { past: now - 5_000, justPast: now - 1, future: now + 60_000, early: 5 };
    for (const [token, expiry] of Object.entries(expiries)) await (redis as Redis).zadd(key, expiry, token);
    const released: Record<string, number> = {};
    for (const token of Object.keys(expiries)) {
      released[token] = await runScript(redis, lockScripts.semRelease, [key], [token]);
    }
    expect(released).toEqual({ past: 0, justPast: 0, future: 1, early: 0 });
    expect(await redis.exists(key)).toBe(0);
  });

  it("Semaphore release purges the expired permits of dead holders along with its own", async () => {
    const name = `${topology}-sem-purge`;
    const key = `${prefix}:sem:{${name}}`;
    const mine = await new Semaphore(redis, name, { prefix, permits: 5, ttlMs: 30_000 }).acquire();
    const [seconds] = await redis.time();
    // Two holders that died without releasing: their permits expired on server time.
    await (redis as Redis).zadd(key, Number(seconds) * 1000 - 2_000, "dead-1", Number(seconds) * 1000 - 1, "dead-2");
    expect(await mine.release()).toBe(true);
    expect(await redis.exists(key)).toBe(0);
  });

  it("Semaphore using(): waits for a permit and runs", async () => {
    const sem = new Semaphore(redis, `${topology}-sem-using`, { prefix, permits: 2, ttlMs: 1_000 });
    let running = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        sem.using(
          async () => {
            running++;
            peak = Math.max(peak, running);
            await sleep(30);
            running--;
          },
          { waitMs: 5_000 },
        ),
      ),
    );
    expect(peak).toBe(2);
  });
});
