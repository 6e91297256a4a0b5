import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { runOncePerTick, tickHistory } from "@coordis/lock";
import { testPrefix } from "@coordis/testing";
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
});
