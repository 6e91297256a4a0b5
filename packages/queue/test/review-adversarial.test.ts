import { connect } from "@coordis/core";
import { type Job, JobCancelledError, Worker } from "@coordis/queue";
import { startProxy, testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-adversarial");

/** Resolves when `job.signal` aborts. */
function aborted(job: Job<unknown>): Promise<void> {
  return new Promise((resolve) => {
    if (job.signal.aborted) resolve();
    else job.signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

describe("the queue's promises under faults (adversarial review)", () => {
  const { worker, queue, redis, onClose } = onSharedServer(prefix);

  /**
   * A worker on a connection of its own that takes one job and then loses Redis for good (its client disconnected
   * mid-run): no renewal, no outcome, no hand-back reaches Redis, as for a crashed process. Resolves with the
   * delivery's fence once its handler runs.
   */
  async function crashedWorker(name: string, opts: object): Promise<{ fence: number; id: string }> {
    const client = connect(inject("coordisRedisUrl"));
    const started = gate<{ fence: number; id: string }>();
    const w = new Worker<string, string>(
      client,
      name,
      async (job) => {
        started.open({ fence: job.fence, id: job.id });
        await aborted(job);
        return "from the crashed worker";
      },
      { prefix, schedules: false, leaseMs: 1_000, ...opts },
    );
    onClose(() => w.close({ timeoutMs: 0 }));
    const first = await started.promise;
    client.disconnect();
    return first;
  }

  it("a grouped job whose worker crashed gives its group slot back at its lease; the group runs one job at a time", async () => {
    const name = "crash-group";
    const q = queue<string, string>(name);
    await q.add("a", { id: "a", group: "g", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    const lost = await crashedWorker(name, { groups: { concurrency: 1 } });
    expect(lost.id).toBe("a");
    await q.addMany([
      { data: "b", opts: { id: "b", group: "g" } },
      { data: "c", opts: { id: "c", group: "g" } },
    ]);
    let running = 0;
    let most = 0;
    const runs: string[] = [];
    const fences = new Map<string, number>();
    worker<string, string>(
      name,
      async (job) => {
        running++;
        most = Math.max(most, running);
        runs.push(`${job.id}#${job.attempt}`);
        fences.set(job.id, job.fence);
        // Room for another job of the group to start meanwhile, were the limit not held.
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return `${job.id} done`;
      },
      { concurrency: 5, leaseMs: 1_000, groups: { concurrency: 1 } },
    );
    for (const id of ["a", "b", "c"]) expect(await q.result(id, { timeoutMs: 10_000 })).toBe(`${id} done`);
    expect(most).toBe(1);
    expect(runs.filter((r) => r.startsWith("a"))).toEqual(["a#2"]);
    expect(fences.get("a")).toBeGreaterThan(lost.fence);
    expect(await q.get("a")).toMatchObject({ state: "completed", attempts: 2 });
    // Nothing of the group is left counted as running.
    await waitUntil(
      "the group's running count is gone",
      async () => (await redis().hget(`${prefix}:queue:{${name}}:groups`, "c:g")) === null,
      5_000,
    );
  }, 30_000);

  it("a crashed worker's lease that expires while the queue is paused: the attempt is counted, nothing runs until resume", async () => {
    const name = "crash-paused";
    const q = queue<string, string>(name);
    await q.add("p", { id: "p", attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    await crashedWorker(name, {});
    await q.pause();
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(`${job.id}#${job.attempt}`);
        return `${job.id} done`;
      },
      { leaseMs: 1_000, blockMs: 100 },
    );
    // The live worker's fetch reclaims the expired lease (the attempt counts) but hands out nothing while paused.
    await waitUntil(
      "the lost attempt is counted",
      async () => {
        const info = await q.get("p");
        return info?.state === "waiting" && info.attempts === 1;
      },
      10_000,
    );
    expect((await q.counts()).active).toBe(0);
    expect(runs).toEqual([]);
    await q.resume();
    expect(await q.result("p", { timeoutMs: 10_000 })).toBe("p done");
    expect(runs).toEqual(["p#2"]);
  }, 30_000);

  it("a job cancelled while it waits out its retry backoff never runs again; result() rejects with JobCancelledError", async () => {
    const name = "cancel-backoff";
    const q = queue<string, string>(name);
    const runs: number[] = [];
    worker<string, string>(name, async (job) => {
      runs.push(job.attempt);
      throw new Error("boom");
    });
    await q.add("x", { id: "x", attempts: 3, backoff: { type: "fixed", delayMs: 60_000 } });
    await waitUntil("x waits for its retry", async () => (await q.get("x"))?.state === "delayed", 10_000);
    expect(await q.cancel("x")).toBe(true);
    await expect(q.result("x", { timeoutMs: 2_000 })).rejects.toBeInstanceOf(JobCancelledError);
    expect(await q.get("x")).toMatchObject({ state: "cancelled", attempts: 1 });
    expect(await q.counts()).toMatchObject({ delayed: 0, waiting: 0, active: 0, cancelled: 1 });
    expect(runs).toEqual([1]);
  }, 30_000);

  it("deliveries cut off from Redis past their leases: each job's result and fenced write are its latest delivery's", async () => {
    const name = "fenced-effects";
    const q = queue<number, string>(name);
    const n = 10;
    // A fenced store: a write lands only with a higher fence than the one stored (README, exactly-once effects).
    const store = new Map<number, { fence: number; value: string }>();
    const write = (job: Job<number>): string => {
      const value = `${job.data}@${job.fence}`;
      const held = store.get(job.data);
      if (held === undefined || held.fence < job.fence) store.set(job.data, { fence: job.fence, value });
      return value;
    };
    const proxy = await startProxy({ target: inject("coordisRedisUrl") });
    const cutClient = connect(proxy.url, { commandTimeoutMs: 500 });
    onClose(async () => {
      cutClient.disconnect();
      await proxy.close();
    });
    const started = new Set<number>();
    const healed = gate();
    const cutOutcomes: string[] = [];
    const cut = new Worker<number, string>(
      cutClient,
      name,
      async (job) => {
        started.add(job.data);
        // Ignores its signal: writes (with its stale fence) and returns once the partition healed.
        await healed.promise;
        return write(job);
      },
      {
        prefix,
        schedules: false,
        concurrency: n,
        leaseMs: 1_000,
        observer: { onOperation: (op) => void (op.op === "process" && cutOutcomes.push(op.outcome)) },
      },
    );
    onClose(() => cut.close({ timeoutMs: 0 }));
    await q.addMany(Array.from({ length: n }, (_, i) => ({ data: i, opts: { id: `j${i}`, attempts: 5 } })));
    await waitUntil("the cut-off worker runs every job", () => started.size === n, 10_000);
    proxy.blackhole();
    const fences = new Map<number, number>();
    for (let i = 0; i < 2; i++) {
      worker<number, string>(
        name,
        async (job) => {
          fences.set(job.data, job.fence);
          return write(job);
        },
        { concurrency: 4, leaseMs: 1_000 },
      );
    }
    const results: string[] = [];
    for (let i = 0; i < n; i++) results.push(await q.result(`j${i}`, { timeoutMs: 20_000 }));
    proxy.heal();
    healed.open();
    await waitUntil("the cut-off worker's outcomes are settled", () => cutOutcomes.length === n, 15_000);
    expect(cutOutcomes).toEqual(Array.from({ length: n }, () => "refused"));
    for (let i = 0; i < n; i++) {
      expect(results[i]).toBe(`${i}@${fences.get(i)}`);
      expect(store.get(i)?.value).toBe(results[i]);
      expect(await q.get(`j${i}`)).toMatchObject({ state: "completed", attempts: 2, result: results[i] });
    }
  }, 60_000);

  it("a schedule whose runs were missed while no worker ran makes one job, for the first missed run, then goes on after now", async () => {
    const name = "catch-up";
    const q = queue<string, string>(name);
    const everyMs = 60_000;
    expect(await q.schedule("nightly", { everyMs }, "run")).toBe(true);
    // Five runs missed: as if the schedule's next run had been due five periods ago and no worker had run since.
    const [sec] = await redis().time();
    const now = Number(sec) * 1_000;
    const missed = (Math.floor(now / everyMs) - 5) * everyMs;
    await redis().zadd(`${prefix}:queue:{${name}}:schedz`, missed, "nightly");
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(job.id);
        return job.data;
      },
      { schedules: true },
    );
    expect(await q.result(`{schedule:nightly}${missed}`, { timeoutMs: 10_000 })).toBe("run");
    const next = Number(await redis().zscore(`${prefix}:queue:{${name}}:schedz`, "nightly"));
    expect(next).toBeGreaterThan(now);
    expect(next % everyMs).toBe(0);
    expect(next - now).toBeLessThanOrEqual(everyMs + 1_000);
    expect(await q.unschedule("nightly")).toBe(true);
    expect(runs).toEqual([`{schedule:nightly}${missed}`]);
    expect((await q.counts()).completed).toBe(1);
  }, 30_000);

  it("a grouped job handed back by close() gives its slot to the group's waiter at once; its attempt does not count", async () => {
    const name = "handback-group";
    const q = queue<string, string>(name);
    const firstStarted = gate();
    const first = worker<string, string>(
      name,
      async (job) => {
        firstStarted.open();
        await aborted(job);
        return "from the closed worker";
      },
      { concurrency: 5, leaseMs: 30_000, groups: { concurrency: 1 } },
    );
    await q.add("a", { id: "a", group: "g" });
    await firstStarted.promise;
    await q.add("b", { id: "b", group: "g" });
    const gwait = `${prefix}:queue:{${name}}:gwait`;
    await waitUntil("b waits for the group's slot", async () => (await redis().zcard(gwait)) === 1, 10_000);
    await first.close({ timeoutMs: 0 });
    expect(first.stats()).toMatchObject({ handedBack: 1, completed: 0 });
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(`${job.id}#${job.attempt}`);
        return `${job.id} done`;
      },
      { concurrency: 5, leaseMs: 30_000, groups: { concurrency: 1 } },
    );
    // Without waiting for the 30 s lease: a's slot went back with it, to b, the group's waiter.
    expect(await q.result("a", { timeoutMs: 5_000 })).toBe("a done");
    expect(await q.result("b", { timeoutMs: 5_000 })).toBe("b done");
    expect(runs).toEqual(["b#1", "a#1"]);
    expect(await q.get("a")).toMatchObject({ state: "completed", attempts: 1 });
  }, 30_000);
});
