import { connect, type RedisClient } from "@coordis/core";
import { type Job, JobLostError, Queue, Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { gate, tracked } from "./helpers.js";

const prefix = testPrefix("queue");

async function serverMs(redis: RedisClient): Promise<number> {
  const [s, us] = await redis.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

describe("queue features on the shared server", () => {
  let redis: RedisClient;
  const { worker, queue, onClose, closeAll } = tracked(() => redis, prefix);
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await closeAll();
  });
  afterAll(() => redis.disconnect());

  it.each([
    ["ahead", 10 * 60_000],
    ["behind", -10 * 60_000],
  ])(
    "delays never fire early by the server's clock with the producer's clock minutes %s (client clock unused)",
    async (_, skewMs) => {
      const name = `delay-${skewMs > 0 ? "ahead" : "behind"}`;
      const q = queue<number>(name);
      const startedAt = new Map<number, number>();
      worker<number, void>(
        name,
        async (job) => {
          startedAt.set(job.data, await serverMs(redis));
        },
        { concurrency: 10 },
      );
      const realNow = Date.now.bind(Date);
      vi.spyOn(Date, "now").mockImplementation(() => realNow() + skewMs);
      const delays = [300, 600, 900, 1_200, 1_500];
      const addedAt = await serverMs(redis);
      const ids = await Promise.all(delays.map((d, i) => q.add(i, { delayMs: d })));
      const info = await q.get((ids[4] as { id: string }).id);
      expect(info?.state).toBe("delayed");
      expect(info?.dueAt).toBeGreaterThanOrEqual(addedAt + 1_500);
      await waitUntil("every delayed job ran", () => startedAt.size === delays.length, 20_000);
      const lateness = delays.map((d, i) => (startedAt.get(i) as number) - addedAt - d);
      console.log(
        `delay lateness (ms, upper bound incl. one round trip) with clock ${skewMs} ms off: ${lateness.join(", ")}`,
      );
      for (const late of lateness) expect(late).toBeGreaterThanOrEqual(0);
    },
  );

  it("a schedule declared by 3 replicas runs once per tick, also after the replica that fired last is closed", async () => {
    const name = "sched";
    const runs: string[] = [];
    const replicas = [0, 1, 2].map((r) => {
      const conn = connect(inject("coordisRedisUrl"));
      const fired: number[] = [];
      const w = new Worker<string, void>(
        conn,
        name,
        async (job) => {
          runs.push(job.id);
        },
        {
          prefix,
          observer: { onEvent: (e) => (e.type === "schedule-fired" ? fired.push(Date.now()) : undefined) },
        },
      );
      const q = new Queue<string>(conn, name, { prefix });
      return { r, conn, w, q, fired, closed: false };
    });
    onClose(async () => {
      for (const x of replicas) {
        if (!x.closed) await x.w.close({ timeoutMs: 1_000 });
        await x.q.close();
        x.conn.disconnect();
      }
    });
    const declared = await Promise.all(replicas.map((x) => x.q.schedule("tick", { everyMs: 1_000 }, "payload")));
    expect(declared.filter(Boolean)).toHaveLength(1);
    await waitUntil("3 runs", () => runs.length >= 3, 15_000);
    const last = replicas.reduce((a, b) => ((a.fired.at(-1) ?? 0) >= (b.fired.at(-1) ?? 0) ? a : b));
    last.closed = true;
    await last.w.close({ timeoutMs: 1_000 });
    const before = runs.length;
    await waitUntil("3 more runs", () => runs.length >= before + 3, 15_000);
    expect(await replicas[0]?.q.unschedule("tick")).toBe(true);
    const ticks = runs.map((id) => Number(id.slice("{schedule:tick}".length)));
    expect(new Set(ticks).size).toBe(ticks.length);
    // One job per run time on the 1 s grid, never two; a run can only be skipped (coalesced) when every replica's
    // scheduler stalled for more than a second on this loaded machine.
    const gaps = ticks.slice(1).map((t, i) => t - (ticks[i] as number));
    for (const gap of gaps) {
      expect(gap % 1_000).toBe(0);
      expect(gap).toBeGreaterThanOrEqual(1_000);
    }
    expect(gaps.filter((g) => g === 1_000).length).toBeGreaterThanOrEqual(gaps.length - 1);
  }, 60_000);

  it("a schedule changed after its run was due, before any worker made that run: the run is made, with the change", async () => {
    const q = queue<string>("changed-at-run-time");
    expect(await q.schedule("beat", { everyMs: 1_000 }, "before")).toBe(true);
    // No worker runs: the first run falls due (server time) and nobody makes it yet.
    const declaredAt = await serverMs(redis);
    await waitUntil("the first run to be due", async () => (await serverMs(redis)) >= declaredAt + 1_000, 5_000);
    const changedAt = await serverMs(redis);
    expect(await q.schedule("beat", { everyMs: 1_000 }, "after")).toBe(true);
    const runs: Array<{ at: number; data: string }> = [];
    worker<string, void>(
      "changed-at-run-time",
      async (job) => {
        runs.push({ at: Number(job.id.slice("{schedule:beat}".length)), data: job.data });
      },
      { schedules: true },
    );
    await waitUntil("a run", () => runs.length >= 1, 10_000);
    expect(await q.unschedule("beat")).toBe(true);
    // The run that was due when the schedule changed, not the first one after the change.
    expect(runs[0]?.at).toBeLessThanOrEqual(changedAt);
    expect(runs[0]?.data).toBe("after");
  });

  it("a cron schedule fires (with and without a time zone), one job per run", async () => {
    for (const [label, spec] of [
      ["cron", { cron: "* * * * * *" }],
      ["cron-tz", { cron: "* * * * * *", tz: "Europe/Paris" }],
    ] as const) {
      const q = queue<string>(label);
      const runs: string[] = [];
      worker<string, void>(
        label,
        async (job) => {
          runs.push(job.id);
        },
        { schedules: true },
      );
      expect(await q.schedule("every-second", spec, "payload")).toBe(true);
      await waitUntil(`${label}: two runs`, () => runs.length >= 2, 10_000);
      expect(await q.unschedule("every-second")).toBe(true);
      expect(new Set(runs).size).toBe(runs.length);
    }
    // The README's "5 or 6 fields": croner alone would take a seventh (a year).
    await expect(queue<string>("cron").schedule("year", { cron: "0 0 0 1 1 * 2099" }, "x")).rejects.toMatchObject({
      argument: "spec.cron",
    });
  }, 30_000);

  it("results are kept resultTtlMs; retention keeps at most `completed` finished jobs", async () => {
    const q = queue<number, number>("ttl");
    worker<number, number>("ttl", async (job) => job.data * 10, { retention: { completed: 3 }, concurrency: 1 });
    const { id } = await q.add(7, { resultTtlMs: 400 });
    expect(await q.result(id, { timeoutMs: 10_000 })).toBe(70);
    expect((await q.get(id))?.result).toBe(70);
    await waitUntil("the result to expire", async () => (await q.get(id)) === null, 5_000);
    const many = await q.addMany(Array.from({ length: 8 }, (_, i) => ({ data: i })));
    await q.result((many.at(-1) as { id: string }).id, { timeoutMs: 10_000 });
    await waitUntil("retention applied", async () => (await q.counts()).completed === 3, 10_000);
    expect(await q.get((many[0] as { id: string }).id)).toBeNull();
    expect(await q.get((many.at(-1) as { id: string }).id)).toMatchObject({ state: "completed", result: 70 });
  });

  it("close({ timeoutMs }) hands an unfinished job back at once: another worker runs it without waiting for the lease", async () => {
    const q = queue<string>("close");
    const started = gate<Job<string>>();
    const first = new Worker<string, string>(
      redis,
      "close",
      async (job) => {
        started.open(job);
        await new Promise((r) => job.signal.addEventListener("abort", r));
        return "late";
      },
      { prefix, leaseMs: 60_000, schedules: false },
    );
    const { id } = await q.add("x");
    const job = await started.promise;
    await first.close({ timeoutMs: 100 });
    expect(job.signal.reason).toBeInstanceOf(JobLostError);
    expect((job.signal.reason as JobLostError).reason).toBe("closing");
    expect(first.stats().handedBack).toBe(1);
    const second: Job<string>[] = [];
    worker<string, string>("close", async (j) => {
      second.push(j);
      return "done";
    });
    expect(await q.result(id, { timeoutMs: 5_000 })).toBe("done");
    expect(second[0]).toMatchObject({ attempt: 1 });
    expect(second[0]?.fence).toBeGreaterThan(job.fence);
  });

  it("priorities: 0 first, FIFO within a priority; pause holds everything until resume", async () => {
    const q = queue<string>("prio");
    await q.pause();
    const order: string[] = [];
    worker<string, void>("prio", async (job) => {
      order.push(job.data);
    });
    await q.add("p5", { priority: 5 });
    await q.add("p0-a");
    await q.add("p9", { priority: 9 });
    await q.add("p0-b", { priority: 0 });
    await q.add("p5-b", { priority: 5 });
    expect(await q.counts()).toMatchObject({ waiting: 5, paused: true });
    await q.resume();
    await waitUntil("all ran", () => order.length === 5, 10_000);
    expect(order).toEqual(["p0-a", "p0-b", "p5", "p5-b", "p9"]);
  });

  it("groups: at most `concurrency` jobs of a group run at once across workers, and the rate limit holds", async () => {
    const q = queue<number>("groups");
    let running = 0;
    let peak = 0;
    const handler = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 30));
      running--;
    };
    worker("groups", handler, { concurrency: 5, groups: { concurrency: 2 } });
    worker("groups", handler, { concurrency: 5, groups: { concurrency: 2 } });
    const ids = await q.addMany(Array.from({ length: 12 }, (_, i) => ({ data: i, opts: { group: "tenant-1" } })));
    await waitUntil("all ran", async () => (await q.counts()).completed === 12, 20_000);
    expect(peak).toBe(2);
    expect(ids).toHaveLength(12);

    const r = queue<number>("rated");
    const startedAt: number[] = [];
    worker(
      "rated",
      async () => {
        startedAt.push(await serverMs(redis));
      },
      { concurrency: 5, groups: { rateLimit: [{ limit: 2, windowMs: 1_000, algorithm: "sliding-window" }] } },
    );
    await r.addMany(Array.from({ length: 5 }, (_, i) => ({ data: i, opts: { group: "api" } })));
    await waitUntil("all rated jobs ran", () => startedAt.length === 5, 20_000);
    startedAt.sort((a, b) => a - b);
    // Never more than 2 starts within any window of 1 s.
    for (let i = 2; i < startedAt.length; i++) {
      expect((startedAt[i] as number) - (startedAt[i - 2] as number)).toBeGreaterThanOrEqual(500);
    }
  }, 30_000);
});
