import { connect, type RedisClient } from "@coordis/core";
import { type Lease, MAX_PERMITS, Mutex, Redlock, Semaphore } from "@coordis/lock";
import { type RedisGroup, startRedisGroup, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";

const prefix = testPrefix();

/**
 * Runs `acquire` with the jitter pinned to its lower bound (Math.random() = 0) and returns the waits it scheduled that
 * were shorter than its backoff step at that point (half of 5 * 2^n ms, at most 50): waits taken from the holder's
 * remaining time to live, the hint of a busy attempt.
 */
async function hintedWaits<T>(acquire: () => Promise<T>): Promise<{ value: T; hinted: number[] }> {
  const waits: number[] = [];
  const real = globalThis.setTimeout;
  vi.spyOn(Math, "random").mockReturnValue(0);
  vi.spyOn(globalThis, "setTimeout").mockImplementation(((
    fn: (...a: unknown[]) => void,
    ms?: number,
    ...args: unknown[]
  ) => {
    // The waiter's own sleeps only (a Redlock round sets timers of its own).
    if (typeof ms === "number" && ms < 100 && /lock-base\.[jt]s/.test(new Error().stack ?? "")) waits.push(ms);
    return real(() => fn(...args), ms);
  }) as typeof setTimeout);
  try {
    const value = await acquire();
    return { value, hinted: waits.filter((ms, i) => ms < Math.min(50, 2.5 * 2 ** i)) };
  } finally {
    vi.restoreAllMocks();
  }
}

async function serverMs(redis: RedisClient): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

describe("adversarial: crashed holders and the edges of what is accepted", () => {
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisRedisUrl"));
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  // Holders that crash (their process gone: no release, no extension) leak nothing for longer than their time to
  // live: permits expire by Redis server time, and a waiter comes back just after the earliest one ends (the hint the
  // acquire script returns), not on its next 100 ms backoff step or later.
  it("Semaphore: permits of crashed holders are free by server time, and a waiter gets one just after", async () => {
    const crashed = connect(inject("coordisRedisUrl"));
    await crashed.ping();
    const name = "crashed-holders";
    const ttlMs = 400;
    const dead = new Semaphore(crashed, name, { prefix, permits: 2, ttlMs });
    await dead.acquire();
    await dead.acquire();
    crashed.disconnect();
    const scores = await admin.zrange(`${prefix}:sem:{${name}}`, "0", "0", "WITHSCORES");
    const firstExpiry = Number(scores[1]);
    const waiter = new Semaphore(redis, name, { prefix, permits: 2, ttlMs });
    const lease = await waiter.acquire({ waitMs: 5_000 });
    // Server time, read after: at or past the first permit's expiry (a permit is free from its expiry's instant on,
    // and that instant's millisecond can still be the one read here).
    expect(await serverMs(admin)).toBeGreaterThanOrEqual(firstExpiry);
    expect(await lease.release()).toBe(true);
  });

  it("the bounds themselves are accepted and work: ttlMs 10 ms and 24 h, 512-byte names, 1 000 000 permits", async () => {
    // 128 four-byte characters: exactly 512 bytes of UTF-8, though only 256 UTF-16 code units.
    const longName = "\u{1F512}".repeat(128);
    expect(Buffer.byteLength(longName)).toBe(512);
    const day = 24 * 60 * 60 * 1000;
    const locks = [
      new Mutex(redis, longName, { prefix, ttlMs: day }),
      new Semaphore(redis, longName, { prefix, ttlMs: day, permits: MAX_PERMITS }),
      new Redlock([redis], longName, { prefix, ttlMs: day }),
    ];
    for (const lock of locks) {
      const lease = await lock.acquire({ waitMs: 0 });
      expect(lease.remainingMs()).toBeGreaterThan(day - day / 50);
      await lease.extend(day);
      expect(await lease.release()).toBe(true);
    }
    expect(await admin.pttl(`${prefix}:lock:{${longName}}`)).toBe(-2);
    // The shortest time to live: 8 ms of validity after the drift allowance.
    const short = new Mutex(redis, "ttl-10", { prefix, ttlMs: 10 });
    const fences: number[] = [];
    for (let i = 0; i < 5; i++) {
      const lease = await short.acquire({ waitMs: 1_000 });
      fences.push(lease.fence);
      await lease.release();
    }
    expect(fences).toEqual([...fences].sort((a, b) => a - b));
    expect(new Set(fences).size).toBe(5);
  });

  it("names that differ only in characters keys are built from stay different locks", async () => {
    // Spaces, newlines, colons, NUL and a name that spells another's fence key suffix: each its own lock.
    const names = ["a b", "a\nb", "a:b", "a\u0000b", "a", "a:fence", "A"];
    const leases = await Promise.all(names.map((n) => new Mutex(redis, n, { prefix }).acquire({ waitMs: 0 })));
    expect(new Set(leases.map((l) => l.token)).size).toBe(names.length);
    // Each lease holds its own lock: the fence counter of "a" is not the lock key of "a:fence", and so on.
    for (const l of leases) expect(await l.release()).toBe(true);
  });
});

// "Waiting is polling with jittered exponential backoff (5–100 ms, or just after the holder's remaining TTL)". A
// Redlock round that found the lock busy read each master's remaining TTL and dropped it, so its waiters always
// polled on the backoff and came back up to a step (50 ms) after the lock was free. Each holder below never releases
// (its process died): its lock ends by its TTL, which the waiter must meet through the hint. The waits are read from
// the timers the waiter schedules, not from wall time (which a loaded machine stretches).
describe("adversarial: a waiter behind a crashed holder", () => {
  let group: RedisGroup;
  let holders: RedisClient[];
  let waiters: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3);
    holders = group.urls.map((u) => connect(u));
    waiters = group.urls.map((u) => connect(u));
    await Promise.all([...holders, ...waiters].map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...holders, ...waiters]) c.disconnect();
    await group.stop();
  });

  const cases: Array<[string, (clients: RedisClient[], name: string, ttlMs: number) => Mutex | Semaphore | Redlock]> = [
    ["Mutex", (clients, name, ttlMs) => new Mutex(clients[0] as RedisClient, name, { prefix, ttlMs })],
    [
      "Semaphore",
      (clients, name, ttlMs) => new Semaphore(clients[0] as RedisClient, name, { prefix, ttlMs, permits: 1 }),
    ],
    ["Redlock", (clients, name, ttlMs) => new Redlock(clients, name, { prefix, ttlMs })],
  ];

  it.each(cases)(
    "%s: the waiter comes back on the holder's remaining TTL, not on a backoff step",
    async (kind, make) => {
      let hintedRounds = 0;
      for (let i = 0; i < 10; i++) {
        const name = `crashed-holder-${kind}-${i}`;
        // The holder never extends nor releases: its lock ends by its TTL in Redis.
        const held: Lease = await make(holders, name, 200).acquire();
        const { value: lease, hinted } = await hintedWaits(() => make(waiters, name, 200).acquire({ waitMs: 5_000 }));
        expect(lease.fence).toBeGreaterThan(held.fence);
        await lease.release();
        if (hinted.length > 0) hintedRounds++;
      }
      // The last poll before the expiry finds less than a backoff step (50 ms) left and waits exactly that (a timer
      // stretched past the expiry by a loaded machine can skip it in a round, not in most).
      expect(hintedRounds).toBeGreaterThanOrEqual(3);
    },
    60_000,
  );
});
