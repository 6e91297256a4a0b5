import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { LeaseLostError, runOncePerTick, tickHistory } from "@coordis/lock";
import { recordObserver, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

describe("runOncePerTick", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => redis.disconnect());

  it("runs each tick once; concurrent callers of one tick see it running; history is bounded, newest first", async () => {
    let runs = 0;
    const job = async () => {
      runs++;
      await sleep(50);
      return runs;
    };
    for (const tick of [1, 2, 3, 4]) {
      const calls = await Promise.all(
        [0, 1, 2].map((i) => runOncePerTick(redis, "hourly", tick, job, { prefix, owner: `r${i}`, historyLimit: 3 })),
      );
      expect(calls.filter((c) => c.ran)).toHaveLength(1);
      expect(calls.filter((c) => !c.ran).every((c) => c.state === "running" || c.state === "ok")).toBe(true);
    }
    expect(runs).toBe(4);
    const again = await runOncePerTick(redis, "hourly", new Date(2), job, { prefix });
    expect(again).toMatchObject({ ran: false, state: "ok" });
    const history = await tickHistory(redis, "hourly", { prefix, limit: 10 });
    expect(history.map((h) => h.tick)).toEqual([4, 3, 2]);
    const fences = history.map((h) => h.fence);
    expect(fences[0]).toBeGreaterThan(fences[1] as number);
  });

  it("a failed tick is recorded failed, its error rethrown, and not re-run unless retryOnError", async () => {
    const boom = new Error("disk full");
    const err = await runOncePerTick(redis, "report", 10, () => Promise.reject(boom), { prefix }).catch(
      (e: unknown) => e,
    );
    expect(err).toBe(boom);
    const after = await runOncePerTick(redis, "report", 10, () => "second", { prefix });
    expect(after).toMatchObject({ ran: false, state: "failed" });
    const retried = await runOncePerTick(redis, "report", 10, () => "second", { prefix, retryOnError: true });
    expect(retried).toMatchObject({ ran: true, result: "second", state: "ok" });
    const history = await tickHistory(redis, "report", { prefix });
    expect(history).toHaveLength(2);
    expect(history[0]).toMatchObject({ tick: 10, ok: true, attempt: 2 });
    expect(history[1]).toMatchObject({ tick: 10, ok: false, attempt: 1, error: "Error: disk full" });
  });

  it("holds its lease with auto-extension while a run lasts many TTLs; others see it running", async () => {
    let sawRunning = 0;
    const result = await runOncePerTick(
      redis,
      "long",
      1,
      async (ctx) => {
        // 6 TTLs. The TTL is generous enough that a loaded CI machine's scheduling delays don't outlast it.
        const until = Date.now() + 3_000;
        while (Date.now() < until) {
          const other = await runOncePerTick(redis, "long", 1, () => "dup", { prefix, ttlMs: 500, retryOnError: true });
          if (!other.ran && other.state === "running") sawRunning++;
          await sleep(50);
        }
        return ctx.signal.aborted;
      },
      { prefix, ttlMs: 500 },
    );
    expect(result).toMatchObject({ ran: true, result: false });
    expect(sawRunning).toBeGreaterThan(5);
  });

  it("keeps the record while a run outlasts ttlMs and recordTtlMs: a replica arriving mid-run does not run it again", async () => {
    let runs = 0;
    const job = async () => {
      runs++;
      await sleep(2_500);
      return "done";
    };
    const options = { prefix, ttlMs: 1_000, recordTtlMs: 1_000 };
    const first = runOncePerTick(redis, "outlast", 1, job, { ...options, owner: "a" });
    await sleep(1_500); // the second replica's schedule skew: the scenario, not synchronisation
    const second = await runOncePerTick(redis, "outlast", 1, job, { ...options, owner: "b" });
    expect(second).toMatchObject({ ran: false, state: "running", owner: "a" });
    expect(await first).toEqual({ ran: true, result: "done", state: "ok", owner: "a" });
    expect(runs).toBe(1);
    // Finishing keeps the record recordTtlMs from now: a late replica sees the outcome.
    const recordTtl = await redis.pttl(`${prefix}:tick:{outlast}:t:1`);
    expect(recordTtl).toBeGreaterThan(0);
    expect(recordTtl).toBeLessThanOrEqual(1_000);
    expect(await runOncePerTick(redis, "outlast", 1, job, { ...options, owner: "c" })).toMatchObject({
      ran: false,
      state: "ok",
      owner: "a",
    });
    const history = await tickHistory(redis, "outlast", { prefix });
    expect(history).toMatchObject([{ tick: 1, owner: "a", ok: true, attempt: 1 }]);
  });

  it("a run that lost its tick to another replica is not reported ok: it rejects with LeaseLostError", async () => {
    const observer = recordObserver();
    let takeover: Awaited<ReturnType<typeof runOncePerTick<string>>> | undefined;
    const lost = await runOncePerTick(
      redis,
      "takeover",
      7,
      async (ctx) => {
        // A pause longer than the lease (a long GC, a blocked event loop): auto-extension cannot run.
        const until = performance.now() + 900;
        while (performance.now() < until) {}
        // Meanwhile another replica finds the lease expired and, with retryOnError, claims and runs the tick.
        takeover = await runOncePerTick(redis, "takeover", 7, () => "second", {
          prefix,
          ttlMs: 300,
          retryOnError: true,
          owner: "b",
        });
        return ctx.signal.aborted ? "saw-abort" : "no-abort";
      },
      { prefix, ttlMs: 300, retryOnError: true, owner: "a", observer },
    ).catch((e: unknown) => e);
    expect(takeover).toMatchObject({ ran: true, state: "ok", owner: "b" });
    expect(lost).toBeInstanceOf(LeaseLostError);
    expect(lost).toMatchObject({ lockName: "takeover", reason: "not-held", fence: expect.any(Number) });
    expect(observer.events.map((e) => e.type)).toContain("tick-not-recorded");
    expect(observer.ops.filter((o) => o.op === "tick").map((o) => o.outcome)).toEqual(["ran-lost"]);
    // Only the run that held the tick to the end is recorded.
    const history = await tickHistory(redis, "takeover", { prefix });
    expect(history).toMatchObject([{ tick: 7, owner: "b", ok: true, attempt: 2 }]);
    expect(await runOncePerTick(redis, "takeover", 7, () => "third", { prefix })).toMatchObject({
      ran: false,
      state: "ok",
      owner: "b",
    });
  });

  it("a run whose lease expired while nobody claimed the tick is still recorded ok", async () => {
    const result = await runOncePerTick(
      redis,
      "paused",
      3,
      async () => {
        const until = performance.now() + 900;
        while (performance.now() < until) {}
        // Without retryOnError another replica sees the tick abandoned and leaves it alone.
        const other = await runOncePerTick(redis, "paused", 3, () => "second", { prefix, ttlMs: 300, owner: "b" });
        return other.state;
      },
      { prefix, ttlMs: 300, owner: "a" },
    );
    expect(result).toEqual({ ran: true, result: "abandoned", state: "ok", owner: "a" });
    expect(await tickHistory(redis, "paused", { prefix })).toMatchObject([{ tick: 3, owner: "a", ok: true }]);
  });
});
