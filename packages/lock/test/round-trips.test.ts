import { connect, InvalidArgumentError, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { MIN_LOCK_MS, Mutex, Redlock, runOncePerTick, Semaphore, tickHistory } from "@coordis/lock";
import { countCommands, type RedisServer, stallServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

const prefix = testPrefix();

describe("round trips, input validation and the validity check on a server of our own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  /** Unrestricted client, to check keys from outside the code under test. */
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    admin = server.adminClient();
    await Promise.all([redis.ping(), admin.ping()]);
    // Warm the script cache so EVALSHA never falls back to EVAL inside a count.
    const m = new Mutex(redis, "warm", { prefix });
    const l = await m.acquire();
    await l.extend();
    await l.release();
    const s = new Semaphore(redis, "warm", { prefix, permits: 1 });
    const p = await s.acquire();
    await p.extend();
    await p.release();
    await runOncePerTick(redis, "warm", 1, () => 1, { prefix });
    await tickHistory(redis, "warm", { prefix });
  });
  afterAll(async () => {
    await server.stop();
  });

  it("Mutex acquire, tryAcquire (busy), extend and release are one EVALSHA each", async () => {
    const m = new Mutex(redis, "rt", { prefix, ttlMs: 5_000 });
    const acquired = await countCommands(server, () => m.acquire());
    expect(acquired.sent).toEqual({ evalsha: 1 });
    const lease = acquired.result;
    const busy = await countCommands(server, () => m.tryAcquire());
    expect(busy.result).toBeNull();
    expect(busy.sent).toEqual({ evalsha: 1 });
    expect((await countCommands(server, () => lease.extend())).sent).toEqual({ evalsha: 1 });
    const released = await countCommands(server, () => lease.release());
    expect(released.result).toBe(true);
    expect(released.sent).toEqual({ evalsha: 1 });
    expect(released.roundTrips).toBe(1);
  });

  it("Semaphore acquire, extend and release are one EVALSHA each", async () => {
    const s = new Semaphore(redis, "rt", { prefix, permits: 2 });
    const acquired = await countCommands(server, () => s.acquire());
    expect(acquired.sent).toEqual({ evalsha: 1 });
    expect((await countCommands(server, () => acquired.result.extend())).sent).toEqual({ evalsha: 1 });
    expect((await countCommands(server, () => acquired.result.release())).sent).toEqual({ evalsha: 1 });
  });

  it("runOncePerTick is one round trip to claim plus one to record; a skipped tick is one; history is one", async () => {
    const ran = await countCommands(server, () => runOncePerTick(redis, "rt-job", 7, () => "done", { prefix }));
    expect(ran.result).toMatchObject({ ran: true, result: "done" });
    expect(ran.sent).toEqual({ evalsha: 2 });
    const skipped = await countCommands(server, () => runOncePerTick(redis, "rt-job", 7, () => "again", { prefix }));
    expect(skipped.result).toMatchObject({ ran: false, state: "ok" });
    expect(skipped.sent).toEqual({ evalsha: 1 });
    const history = await countCommands(server, () => tickHistory(redis, "rt-job", { prefix }));
    expect(history.sent).toEqual({ evalsha: 1 });
    expect(history.result).toHaveLength(1);
  });

  it("rejects bad input with InvalidArgumentError naming the argument, sending nothing", async () => {
    const m = new Mutex(redis, "valid", { prefix });
    const cases: Array<[string, () => unknown]> = [
      ["options.ttlMs", () => new Mutex(redis, "x", { prefix, ttlMs: 0 })],
      ["options.ttlMs", () => new Mutex(redis, "x", { prefix, ttlMs: -5 })],
      ["options.ttlMs", () => new Mutex(redis, "x", { prefix, ttlMs: Number.NaN })],
      ["options.ttlMs", () => new Mutex(redis, "x", { prefix, ttlMs: 1e12 })],
      ["options.ttlMs", () => new Mutex(redis, "x", { prefix, ttlMs: 1.5 })],
      // 1 or 2 ms leave no validity after the clock-drift allowance: every grant would be given up as expired.
      ["options.ttlMs", () => new Mutex(redis, "x", { prefix, ttlMs: 2 })],
      ["options.ttlMs", () => new Redlock([redis], "x", { prefix, ttlMs: MIN_LOCK_MS - 1 })],
      ["options.ttlMs", () => runOncePerTick(redis, "job", 1, () => 1, { prefix, ttlMs: 1 })],
      ["name", () => new Mutex(redis, "", { prefix })],
      ["name", () => new Mutex(redis, "x".repeat(513), { prefix })],
      ["name", () => new Mutex(redis, "a{b}", { prefix })],
      ["options.prefix", () => new Mutex(redis, "x", { prefix: "bad prefix" })],
      ["redis", () => new Mutex({} as RedisClient, "x")],
      ["options.waitMs", () => m.acquire({ waitMs: -1 })],
      ["options.waitMs", () => m.acquire({ waitMs: Number.POSITIVE_INFINITY })],
      ["options.signal", () => m.acquire({ signal: {} as AbortSignal })],
      ["options.waitMs", () => m.using(async () => 1, { waitMs: -1 })],
      ["fn", () => m.using(undefined as unknown as () => Promise<void>)],
      ["options.permits", () => new Semaphore(redis, "x", { prefix, permits: 0 })],
      ["options.permits", () => new Semaphore(redis, "x", { prefix, permits: 1.5 })],
      ["options.permits", () => new Semaphore(redis, "x", { prefix } as never)],
      ["nodes", () => new Redlock([], "x", { prefix })],
      ["nodes", () => new Redlock([redis, redis], "x", { prefix })],
      // two clients (here of two users) of one server: the quorum would count that server twice
      ["nodes", () => new Redlock([redis, admin], "x", { prefix })],
      ["options.driftFactor", () => new Redlock([redis], "x", { prefix, driftFactor: 2 })],
      ["tick", () => runOncePerTick(redis, "job", -1, () => 1, { prefix })],
      ["tick", () => runOncePerTick(redis, "job", new Date(Number.NaN), () => 1, { prefix })],
      ["job", () => runOncePerTick(redis, "", 1, () => 1, { prefix })],
      ["options.ttlMs", () => runOncePerTick(redis, "job", 1, () => 1, { prefix, ttlMs: 0 })],
      ["options.historyLimit", () => runOncePerTick(redis, "job", 1, () => 1, { prefix, historyLimit: 0 })],
      ["options.limit", () => tickHistory(redis, "job", { prefix, limit: 0 })],
    ];
    const lease = await m.acquire();
    const extendCase: [string, () => unknown] = ["ttlMs", () => lease.extend(-1)];
    for (const [argument, call] of [...cases, extendCase]) await expectRejectedUnsent(server, argument, call);
    await lease.release();
  });

  it("an unknown option key (a typo) is an InvalidArgumentError naming it, sending nothing", async () => {
    const m = new Mutex(redis, "typo", { prefix });
    const lease = await m.acquire();
    const nodes = [redis];
    const cases: Array<[string, () => unknown]> = [
      ["options.ttl", () => new Mutex(redis, "x", { prefix, ttl: 1000 } as never)],
      ["options.prefx", () => new Mutex(redis, "x", { prefx: "app" } as never)],
      ["options.ttl", () => new Semaphore(redis, "x", { prefix, permits: 2, ttl: 1000 } as never)],
      ["options.permit", () => new Semaphore(redis, "x", { prefix, permits: 2, permit: 3 } as never)],
      ["options.ttl", () => new Redlock(nodes, "x", { prefix, ttl: 1000 } as never)],
      ["options.drift", () => new Redlock(nodes, "x", { prefix, drift: 0.1 } as never)],
      ["options.permits", () => new Mutex(redis, "x", { prefix, permits: 2 } as never)],
      ["options.driftFactor", () => new Semaphore(redis, "x", { prefix, permits: 2, driftFactor: 0.1 } as never)],
      [
        "options.durability.timeout",
        () => new Mutex(redis, "x", { prefix, durability: { replicas: 1, timeoutMs: 100, timeout: 5 } } as never),
      ],
      ["options.waitms", () => m.acquire({ waitms: 0 } as never)],
      ["options.autoExtend", () => m.acquire({ autoExtend: false } as never)],
      ["options.waitms", () => m.using(async () => 1, { waitms: 0 } as never)],
      ["options.autoextend", () => m.using(async () => 1, { autoextend: false } as never)],
      ["options.ttl", () => runOncePerTick(redis, "job", 1, () => 1, { prefix, ttl: 1000 } as never)],
      ["options.retry", () => runOncePerTick(redis, "job", 1, () => 1, { prefix, retry: true } as never)],
      ["options.limt", () => tickHistory(redis, "job", { prefix, limt: 5 } as never)],
    ];
    for (const [argument, call] of cases) {
      const error = await expectRejectedUnsent(server, argument, call);
      expect(error.message, argument).toMatch(/unknown option/);
    }
    // redis-semaphore's acquire(signal): a signal where the options go is refused, not taken for {} and ignored.
    const signal = new AbortController().signal;
    for (const call of [() => m.acquire(signal as never), () => m.using(async () => 1, signal as never)]) {
      const error = await expectRejectedUnsent(server, "options", call);
      expect(error.message).toMatch(/pass it as \{ signal \}/);
    }
    // The documented keys are all still accepted.
    const all = new Redlock([redis], "all-keys", {
      prefix,
      ttlMs: 1000,
      observer: {},
      driftFactor: 0.01,
      nodeTimeoutMs: 100,
    });
    await all.using(async () => 1, { waitMs: 100, signal: new AbortController().signal, autoExtend: false });
    expect(
      await runOncePerTick(redis, "all-keys", 1, () => 1, {
        prefix,
        ttlMs: 1000,
        retryOnError: false,
        recordTtlMs: 2000,
        historyLimit: 5,
        owner: "me",
        observer: {},
      }),
    ).toMatchObject({ ran: true });
    expect(await tickHistory(redis, "all-keys", { prefix, limit: 1 })).toHaveLength(1);
    await lease.release();
  });

  it("a lease whose validity is gone on return (server stalled past the TTL) is released, not handed out", async () => {
    const m = new Mutex(redis, "stalled", { prefix, ttlMs: 200 });
    // A script that spins 400 ms, sent first on the lock's own connection, stalls the server: the acquire queued
    // behind it (same connection, so surely after it) is answered ~400 ms later, after its 200 ms TTL.
    const stall = stallServer(redis, 400);
    const lease = await m.tryAcquire();
    await stall;
    expect(lease).toBeNull();
    expect(await redis.exists(`${prefix}:lock:{stalled}`)).toBe(0);
    // Nothing is left behind: an immediate attempt succeeds.
    const next = await m.tryAcquire();
    expect(next).not.toBeNull();
    await next?.release();
  });

  it("an acquire that timed out but still ran frees its phantom lock at once, not after the TTL (Mutex, Semaphore)", async () => {
    const impatient = connect(server.url, { commandTimeoutMs: 100 });
    try {
      await impatient.ping();
      const locks = [
        { lock: new Mutex(impatient, "phantom", { prefix, ttlMs: 60_000 }), key: `${prefix}:lock:{phantom}` },
        {
          lock: new Semaphore(impatient, "phantom", { prefix, permits: 2, ttlMs: 60_000 }),
          key: `${prefix}:sem:{phantom}`,
        },
      ];
      // Also with a server that has the acquire script cached but not the release (as after a restart, before any
      // release): the compare-and-delete must run without a NOSCRIPT answer the client would no longer wait for.
      for (const releaseCached of [true, false]) {
        for (const { lock, key } of locks) {
          const label = `${key} releaseCached=${releaseCached}`;
          if (!releaseCached) {
            // Forget every script, then have an acquire alone run (on another name; its lock lapses in 1 s).
            await admin.script("FLUSH");
            await (lock instanceof Mutex
              ? new Mutex(redis, "phantom-warm", { prefix, ttlMs: 1_000 })
              : new Semaphore(redis, "phantom-warm", { prefix, permits: 1, ttlMs: 1_000 })
            ).tryAcquire();
          }
          const fenceBefore = Number((await admin.get(`${key}:fence`)) ?? 0);
          // The server stalls 400 ms; the acquire queued behind the stall on the same connection times out after
          // 100 ms on the client, but Redis runs it once the stall ends and grants the lock to a token nobody holds.
          const stall = stallServer(impatient, 400).catch(() => "timed out");
          await expect(lock.tryAcquire(), label).rejects.toBeInstanceOf(RedisUnavailableError);
          await stall;
          // A PING answered on the same connection was processed after the acquire and what was queued behind it.
          await vi.waitFor(() => impatient.ping(), { timeout: 5_000, interval: 20 });
          // The acquire did run (it took a fence), and the compare-and-delete queued behind it freed it at once (the
          // TTL is a minute).
          expect(Number(await admin.get(`${key}:fence`)), label).toBeGreaterThan(fenceBefore);
          expect(await admin.exists(key), label).toBe(0);
          const lease = await lock.tryAcquire();
          expect(lease, label).not.toBeNull();
          await lease?.release();
        }
      }
    } finally {
      impatient.disconnect();
    }
  });

  it("a runOncePerTick claim that timed out but still ran is undone at once: a retry runs the tick", async () => {
    const impatient = connect(server.url, { commandTimeoutMs: 100 });
    try {
      await impatient.ping();
      const record = `${prefix}:tick:{phantom-tick}:t:7`;
      const fn = vi.fn(() => "done");
      // The claim script is cached on the server (the test above flushed it), the undo not.
      await runOncePerTick(redis, "phantom-warm", 1, () => 1, { prefix });
      // As for the locks above: the claim, queued behind a 400 ms stall, times out on the client but Redis runs it
      // once the stall ends, leaving the tick "running" under a token nobody holds (a minute, then "abandoned").
      const stall = stallServer(impatient, 400).catch(() => "timed out");
      await expect(runOncePerTick(impatient, "phantom-tick", 7, fn, { prefix, ttlMs: 60_000 })).rejects.toBeInstanceOf(
        RedisUnavailableError,
      );
      await stall;
      expect(fn).not.toHaveBeenCalled();
      // A PING answered on the same connection was processed after the claim (and whatever was queued behind it).
      await vi.waitFor(() => impatient.ping(), { timeout: 5_000, interval: 20 });
      // The claim did run (it took the job's first fence), and the undo queued behind it removed it.
      expect(await admin.get(`${prefix}:tick:{phantom-tick}:fence`)).toBe("1");
      expect(await admin.exists(record)).toBe(0);
      // So the caller's retry runs the tick, once.
      expect(await runOncePerTick(redis, "phantom-tick", 7, fn, { prefix, ttlMs: 60_000 })).toMatchObject({
        ran: true,
        result: "done",
        state: "ok",
      });
      expect(fn).toHaveBeenCalledTimes(1);
      expect(await runOncePerTick(redis, "phantom-tick", 7, fn, { prefix })).toMatchObject({ ran: false, state: "ok" });
    } finally {
      impatient.disconnect();
    }
  });
});

/** `call` rejects with an InvalidArgumentError naming `argument`, and sends nothing to Redis; resolves with the error. */
async function expectRejectedUnsent(
  server: RedisServer,
  argument: string,
  call: () => unknown,
): Promise<InvalidArgumentError> {
  const { result, roundTrips, executed } = await countCommands(server, async () => {
    try {
      await call();
      return undefined;
    } catch (err) {
      return err;
    }
  });
  expect(result, argument).toBeInstanceOf(InvalidArgumentError);
  expect((result as InvalidArgumentError).argument).toBe(argument);
  expect(roundTrips, argument).toBe(0);
  expect(executed, argument).toEqual({});
  return result as InvalidArgumentError;
}
