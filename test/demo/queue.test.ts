import { connect, type RedisClient } from "@coordis/core";
import { Activity, type PlayerStats, StatsStore } from "@coordis/demo";
import { Queue, Worker } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// The demo's stats queue parts, in-process against the suite's Redis (the least-privilege user): the fenced stats
// store, a stale delivery that cannot overwrite newer stats, and the fleet-wide chart counts.
const prefix = testPrefix("demo-queue");
let redis: RedisClient;

beforeAll(() => {
  redis = connect(inject("coordisRedisUrl"));
});

afterAll(() => {
  redis?.disconnect();
});

const statsOf = (fence: number, submissions = fence): PlayerStats => ({
  submissions,
  best: submissions * 10,
  average: 5,
  fence,
  computedBy: "test",
  computedAt: Date.now(),
});

describe("demo stats queue", () => {
  it("stores player stats fenced: a lower fence never replaces a higher one", async () => {
    const store = new StatsStore(redis, prefix);
    expect(await store.read("p1")).toBeNull();
    expect(await store.write("p1", statsOf(5), 5)).toBe(true);
    expect(await store.write("p1", statsOf(3), 3)).toBe(false);
    expect(await store.read("p1")).toMatchObject({ fence: 5, submissions: 5 });
    expect(await store.write("p1", statsOf(7), 7)).toBe(true);
    expect(await store.read("p1")).toMatchObject({ fence: 7 });
    // Only the winning value is kept.
    expect(await redis.zcard(`${prefix}:player:{p1}:stats`)).toBe(1);

    // 40 writes racing in random order: readers end on the highest fence, and it was applied.
    const fences = Array.from({ length: 40 }, (_, i) => 100 + i).sort(() => Math.random() - 0.5);
    const applied = await Promise.all(fences.map((f) => store.write("p2", statsOf(f), f)));
    expect(applied[fences.indexOf(139)]).toBe(true);
    expect(await store.read("p2")).toMatchObject({ fence: 139 });
    expect(await redis.zcard(`${prefix}:player:{p2}:stats`)).toBe(1);
  });

  it("refuses the stats write of a delivery that was handed to another worker", async () => {
    const store = new StatsStore(redis, prefix);
    const name = `stats-${Date.now()}`;
    const queue = new Queue<{ playerId: string }, { applied: boolean; fence: number }>(redis, name, { prefix });
    let startedA!: (fence: number) => void;
    const aStarted = new Promise<number>((r) => {
      startedA = r;
    });
    let openGate!: () => void;
    const gate = new Promise<void>((r) => {
      openGate = r;
    });
    let staleWrite: Promise<boolean> | undefined;
    // Worker A starts the job, then stalls (it ignores its signal, as a paused process would) until the gate opens.
    const a = new Worker<{ playerId: string }, { applied: boolean; fence: number }>(
      redis,
      name,
      async (job) => {
        startedA(job.fence);
        await gate;
        staleWrite = store.write(job.data.playerId, statsOf(job.fence, 1), job.fence);
        return { applied: await staleWrite, fence: job.fence };
      },
      { prefix, leaseMs: 5_000, schedules: false },
    );
    const { id } = await queue.add({ playerId: "stale" }, { id: "job-1" });
    const fenceA = await aStarted;
    const b = new Worker<{ playerId: string }, { applied: boolean; fence: number }>(
      redis,
      name,
      async (job) => ({
        applied: await store.write(job.data.playerId, statsOf(job.fence, 2), job.fence),
        fence: job.fence,
      }),
      { prefix, leaseMs: 5_000, schedules: false },
    );
    try {
      // A closes without waiting: the job goes back to the queue at once and B runs it with a higher fence.
      const closing = a.close({ timeoutMs: 0 });
      const result = await queue.result(id, { timeoutMs: 20_000 });
      expect(result.applied).toBe(true);
      expect(result.fence).toBeGreaterThan(fenceA);
      // Now the stale delivery writes: refused, and readers keep B's stats.
      openGate();
      await closing;
      await expect.poll(() => staleWrite, { timeout: 10_000 }).toBeDefined();
      expect(await staleWrite).toBe(false);
      expect(await store.read("stale")).toMatchObject({ fence: result.fence, submissions: 2 });
    } finally {
      openGate();
      await Promise.all([a.close({ timeoutMs: 0 }), b.close({ timeoutMs: 1_000 })]);
      await queue.close();
    }
  });

  it("sums every replica's chart counts per interval in Redis", async () => {
    const depth = { waiting: 4, delayed: 2, active: 1, completed: 0, dead: 0, cancelled: 0, paused: false };
    const replicas = [new Activity("player-stats"), new Activity("player-stats")];
    for (const r of replicas) r.start(redis, prefix, async () => depth);
    try {
      for (const r of replicas) {
        const op = (primitive: string, op: string, outcome: string, extra: object = {}) =>
          r.observer.onOperation?.({ primitive, op, outcome, durationMs: 1, ...extra });
        for (let i = 0; i < 3; i++) op("ratelimit", "consume", "allowed");
        op("ratelimit", "consume", "rejected");
        op("ratelimit", "peek", "allowed");
        op("queue", "add", "added", { name: "player-stats", attributes: { jobs: 5, duplicates: 1 } });
        op("queue", "add", "duplicate", { name: "player-stats", attributes: { jobs: 1 } });
        op("queue", "add", "added", { name: "other-queue", attributes: { jobs: 9 } });
        op("queue", "process", "completed", { name: "player-stats" });
        op("queue", "process", "completed", { name: "player-stats" });
        op("queue", "process", "retry", { name: "player-stats" });
        op("queue", "process", "dead", { name: "player-stats" });
      }
      await Promise.all(replicas.map((r) => r.flush()));
      const series = await (replicas[0] as Activity).read();
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      expect(series.counters.allowed.length).toBe(60);
      expect({
        allowed: sum(series.counters.allowed),
        denied: sum(series.counters.denied),
        added: sum(series.counters.added),
        completed: sum(series.counters.completed),
        retried: sum(series.counters.retried),
        dead: sum(series.counters.dead),
      }).toEqual({ allowed: 6, denied: 2, added: 8, completed: 4, retried: 2, dead: 2 });
      // The newest sample (the current interval's, or the previous one's if an interval just began).
      const last = (xs: Array<number | null>) => xs.filter((v) => v !== null).at(-1);
      expect(last(series.gauges.waiting)).toBe(4);
      expect(last(series.gauges.delayed)).toBe(2);
      expect(last(series.gauges.active)).toBe(1);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });
});
