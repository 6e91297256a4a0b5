import { DurabilityError, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { runOncePerTick } from "@coordis/lock";
import {
  countCommands,
  type FaultProxy,
  type RedisServer,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/**
 * runOncePerTick's `durability` option on a primary with one replica that replicates through a fault proxy (so a
 * test can delay or cut replication while both servers stay up).
 */
describe("runOncePerTick durability setting", () => {
  let primary: RedisServer;
  let replica: RedisServer;
  let link: FaultProxy;
  let redis: RedisClient;
  let onReplica: RedisClient;
  let onPrimary: RedisClient;
  const record = (job: string, tick: number) => `${prefix}:tick:{${job}}:t:${tick}`;
  beforeAll(async () => {
    // No 5 s diskless-sync delay before the replica's first sync.
    primary = await startRedis({ leastPrivilege: true, extraArgs: ["--repl-diskless-sync-delay", "0"] });
    link = await startProxy({ target: primary });
    replica = await startRedis({ extraArgs: ["--replicaof", link.host, String(link.port)] });
    redis = primary.client({ commandTimeoutMs: 2_000 });
    onPrimary = primary.adminClient();
    onReplica = replica.adminClient();
    await waitUntil(
      "the replica to sync",
      async () => /master_link_status:up/.test(await onReplica.info("replication")),
      {
        timeoutMs: 20_000,
        intervalMs: 20,
      },
    );
    // Warm the script cache, so counts see EVALSHA and not a NOSCRIPT fallback.
    await runOncePerTick(redis, "warm", 1, () => 0, { prefix });
  });
  afterAll(async () => {
    await link.close();
    await replica.stop();
    await primary.stop();
  });

  it("rejects bad durability options with InvalidArgumentError naming the key, before anything is sent", async () => {
    // The same parsing as Mutex's (each rule is covered in durability.test.ts); one case of each kind here.
    const bad: Array<[unknown, string]> = [
      [{ replicas: 1, timeoutMs: 100, extra: 1 }, "options.durability.extra"],
      [{ replicas: 1 }, "options.durability.timeoutMs"],
      [{ replicas: 1, timeoutMs: 100, aof: "yes" }, "options.durability.aof"],
      // Not below the client's commandTimeout (2 000 ms), then not below ttlMs (1 000 ms here).
      [{ replicas: 1, timeoutMs: 2_000 }, "options.durability.timeoutMs"],
      [{ replicas: 1, timeoutMs: 1_000 }, "options.durability.timeoutMs"],
    ];
    let calls = 0;
    const counted = await countCommands(primary, async () => {
      for (const [durability, argument] of bad) {
        const error = await runOncePerTick(redis, "bad", 1, () => calls++, {
          prefix,
          ttlMs: 1_000,
          durability,
        } as never).catch((e: unknown) => e);
        expect(error, JSON.stringify(durability)).toBeInstanceOf(InvalidArgumentError);
        expect((error as InvalidArgumentError).argument).toBe(argument);
      }
    });
    expect(counted.sent).toEqual({});
    expect(calls).toBe(0);
  });

  it("with replicas: 1, fn runs only once the replica holds the claim: WAIT in the claim's round trip", async () => {
    // Replication 150 ms behind: without the wait, fn would start before the replica has the claim.
    link.setLatency(150);
    try {
      const counted = await countCommands(primary, () =>
        runOncePerTick(redis, "confirmed", 1, async () => onReplica.hget(record("confirmed", 1), "state"), {
          prefix,
          durability: { replicas: 1, timeoutMs: 1_500 },
        }),
      );
      expect(counted.result).toEqual({ ran: true, result: "running", state: "ok", owner: expect.any(String) });
      // Claim + its WAIT, then the finish (not waited for).
      expect(counted.sent).toEqual({ evalsha: 2, wait: 1 });
    } finally {
      link.setLatency(0);
    }
  });

  it("with replicas: 2 the claim times out: DurabilityError, fn not called, the claim undone", async () => {
    let calls = 0;
    const fn = () => ++calls;
    const durability = { replicas: 2, timeoutMs: 200 };
    const error = await runOncePerTick(redis, "unconfirmed", 7, fn, { prefix, durability }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DurabilityError);
    expect(error).toMatchObject({
      code: "ERR_DURABILITY",
      reason: "timeout",
      operation: "lock/tick-claim",
      replicasRequired: 2,
      replicasAcknowledged: 1,
    });
    expect(calls).toBe(0);
    // Undone: the tick was never claimed, so a call without the setting runs it (attempt 1).
    expect(await onPrimary.exists(record("unconfirmed", 7))).toBe(0);
    expect(await runOncePerTick(redis, "unconfirmed", 7, fn, { prefix })).toMatchObject({ ran: true, result: 1 });

    // A retry's claim that is not confirmed is left as an abandoned run: a later retry claims it (attempt 3).
    await runOncePerTick(redis, "unconfirmed", 8, () => Promise.reject(new Error("first")), { prefix }).catch(() => 0);
    const retry = { prefix, retryOnError: true };
    await expect(runOncePerTick(redis, "unconfirmed", 8, fn, { ...retry, durability })).rejects.toBeInstanceOf(
      DurabilityError,
    );
    expect(calls).toBe(1);
    expect(await runOncePerTick(redis, "unconfirmed", 8, fn, { prefix })).toMatchObject({
      ran: false,
      state: "abandoned",
    });
    expect(await runOncePerTick(redis, "unconfirmed", 8, fn, retry)).toMatchObject({ ran: true, result: 2 });
    expect(await onPrimary.hget(record("unconfirmed", 8), "attempt")).toBe("3");
  });

  it("a retry's unconfirmed claim is undone even when Redis filled up meanwhile (noeviction: OOM)", async () => {
    const job = "unconfirmed-full";
    await runOncePerTick(redis, job, 1, () => Promise.reject(new Error("first")), { prefix }).catch(() => 0);
    // WAIT gives up after 1.5 s (the client's command timeout is 2 s): the window in which Redis fills up.
    const durability = { replicas: 2, timeoutMs: 1_500 };
    let calls = 0;
    const claim = runOncePerTick(redis, job, 1, () => ++calls, {
      prefix,
      retryOnError: true,
      durability,
      ttlMs: 60_000,
    }).catch((e: unknown) => e);
    const policy = await onPrimary.config("GET", "maxmemory-policy");
    try {
      // While the claim's WAIT waits for a second replica, Redis fills up: new data is refused from now on.
      await waitUntil("the retry's claim", async () => (await onPrimary.hget(record(job, 1), "attempt")) === "2", {
        timeoutMs: 1_000,
        intervalMs: 5,
      });
      await onPrimary.config("SET", "maxmemory-policy", "noeviction");
      await onPrimary.set(`${prefix}:filler`, "x".repeat(2_000_000));
      await onPrimary.config("SET", "maxmemory", "1mb");
      await expect(onPrimary.set(`${prefix}:probe`, "x")).rejects.toThrow(/OOM/);
      // Still claimed: the undo comes once WAIT gives up, on the full Redis.
      expect(await onPrimary.hget(record(job, 1), "token")).not.toBeNull();
      expect(await claim).toBeInstanceOf(DurabilityError);
      expect(calls).toBe(0);
    } finally {
      await onPrimary.config("SET", "maxmemory", "0");
      await onPrimary.config("SET", "maxmemory-policy", (policy as string[])[1] as string);
      await onPrimary.del(`${prefix}:filler`);
    }
    // Undone at once: an abandoned run (no token, lease ended), not a run held for its 60 s lease.
    expect(await onPrimary.hmget(record(job, 1), "state", "token", "leaseUntil")).toEqual(["running", null, "0"]);
    expect(await runOncePerTick(redis, job, 1, () => ++calls, { prefix })).toMatchObject({
      ran: false,
      state: "abandoned",
    });
  });

  it("an extension the replica does not confirm counts as failed: the run's signal aborts by its last confirmed deadline", async () => {
    const ttlMs = 600;
    const result = await runOncePerTick(
      redis,
      "extend",
      1,
      async (ctx) => {
        // Replication is cut mid-run: extensions still succeed on the primary but are never confirmed.
        link.blackhole();
        const started = performance.now();
        await waitUntil("the run's signal to abort", () => ctx.signal.aborted, { timeoutMs: 5_000, intervalMs: 5 });
        return { afterMs: performance.now() - started, reason: (ctx.signal.reason as { reason?: string }).reason };
      },
      { prefix, ttlMs, durability: { replicas: 1, timeoutMs: 150 } },
    );
    link.heal();
    expect(result.ran).toBe(true);
    expect(result.result?.reason).toBe("expired");
    // By the last confirmed deadline (well before the next extensions would have carried it), not ttlMs after.
    expect(result.result?.afterMs).toBeLessThan(2 * ttlMs);
  });
});
