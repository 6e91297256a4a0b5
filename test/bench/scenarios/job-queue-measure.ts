/**
 * How the job-queue scenarios measure a library behind a driver (job-queue-drivers.ts): end to end in a closed loop
 * of producers, add → start latency at a fixed share of that capacity, and bulk adds.
 */
import { performance } from "node:perf_hooks";
import { Counter, closedLoop } from "../measure.js";
import type { LatencyResult, ScenarioInstance, SetupContext, ThroughputResult } from "../types.js";
import type { BulkDriver, JobQueueDriver } from "./job-queue-drivers.js";

/** Jobs per bulk add. */
export const BULK = 100;
/** End to end: producers wait while this many jobs are added and not yet started (the queue does not just grow). */
const MAX_BACKLOG = 2_000;
/** Half load: the fixed rate is this share of the library's end-to-end capacity measured in the same run. */
export const LOAD_SHARE = 0.5;
/** Half load: the producer's tick, ms (each tick adds the jobs the rate asks for by then). */
const TICK_MS = 5;
/** One job not started within this time fails the row, ms. */
const JOB_TIMEOUT_MS = 10_000;

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Jobs/s each library reached end to end in this run (the half-load rows drive half of it). */
type Capacities = Map<"coordis" | "bullmq", number>;
export const capacities = (ctx: SetupContext) => ctx.shared<Capacities>("job-queue-capacity", async () => new Map());

/** Per-job bookkeeping shared by the measurements: who waits for job n, when it was added. */
class Tracker {
  seq = 0;
  readonly #waiters = new Map<number, () => void>();
  readonly addedAt = new Map<number, number>();
  started = 0;
  /** Add → start of each job started while `sampling`, ms. */
  samples: number[] = [];
  sampling = false;
  /** Called after every start (a producer waiting for the backlog to shrink). */
  listener: (() => void) | undefined;

  onStart = (n: number) => {
    this.started++;
    this.listener?.();
    const t0 = this.addedAt.get(n);
    if (t0 !== undefined) {
      this.addedAt.delete(n);
      if (this.sampling) this.samples.push(performance.now() - t0);
    }
    const w = this.#waiters.get(n);
    if (w !== undefined) {
      this.#waiters.delete(n);
      w();
    }
  };

  /** Adds one job and waits until a handler started it. */
  async one(driver: JobQueueDriver): Promise<number> {
    const n = this.seq++;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`job ${n} not started within ${JOB_TIMEOUT_MS} ms`)),
        JOB_TIMEOUT_MS,
      );
      this.#waiters.set(n, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    const t0 = performance.now();
    await driver.add(n);
    await done;
    return performance.now() - t0;
  }

  clear(): void {
    this.addedAt.clear();
    this.#waiters.clear();
    this.samples = [];
    this.sampling = false;
  }
}

/**
 * End to end: 50 producers add jobs in a closed loop (waiting while {@link MAX_BACKLOG} jobs are added and not
 * started) while 2 workers × 50 handlers run them; jobs/s = jobs started inside the window. Every job is completed with
 * its result kept. Latency (sequential): add → started, one job at a time.
 */
export function endToEnd(driver: JobQueueDriver, record?: (jobsPerSec: number) => void): ScenarioInstance {
  const t = new Tracker();
  return {
    async throughput(durationMs, concurrency): Promise<ThroughputResult> {
      t.clear();
      await driver.start(t.onStart);
      let open = false;
      let errors = 0;
      let error: string | undefined;
      try {
        await t.one(driver);
        const startedBefore = t.started;
        let added = 0;
        // Producers waiting for the backlog to shrink; woken by every start and when the window closes.
        let waiting: Array<() => void> = [];
        const wakeAll = () => {
          if (waiting.length === 0) return;
          const list = waiting;
          waiting = [];
          for (const w of list) w();
        };
        const backlog = () => added - (t.started - startedBefore);
        t.listener = () => {
          if (backlog() < MAX_BACKLOG) wakeAll();
        };
        open = true;
        const start = performance.now();
        let end = Number.NaN;
        let ops = 0;
        const timer = setTimeout(() => {
          open = false;
          end = performance.now();
          ops = t.started - startedBefore;
          wakeAll();
        }, durationMs);
        const producer = async () => {
          while (open) {
            if (backlog() >= MAX_BACKLOG) {
              await new Promise<void>((resolve) => waiting.push(resolve));
              continue;
            }
            added++;
            try {
              await driver.add(t.seq++);
            } catch (err) {
              errors++;
              error ??= message(err);
              return;
            }
          }
        };
        await Promise.all(Array.from({ length: concurrency }, producer));
        if (open) {
          // Every producer stopped at an error before the window closed.
          clearTimeout(timer);
          open = false;
          end = performance.now();
          ops = t.started - startedBefore;
        }
        const elapsedMs = end - start;
        const completed = t.started - startedBefore;
        // A window too short to start anything (a 30 ms warm-up on a slow machine) measures no capacity: keep the last one.
        if (error === undefined && ops > 0) record?.((ops * 1000) / elapsedMs);
        return error === undefined
          ? { ops, completed, elapsedMs, errors }
          : { ops, completed, elapsedMs, errors, error };
      } finally {
        open = false;
        t.listener = undefined;
        await driver.stop();
      }
    },
    reset: () => driver.clean(),
    latency: (durationMs) => sequentialJobs(driver, t, durationMs),
    async countOps(count) {
      t.clear();
      await driver.start(t.onStart);
      try {
        for (let i = 0; i < count; i++) await t.one(driver);
      } finally {
        await driver.stop();
      }
    },
  };
}

/** One job at a time for `durationMs`: add → started, ms. */
async function sequentialJobs(driver: JobQueueDriver, t: Tracker, durationMs: number): Promise<LatencyResult> {
  t.clear();
  await driver.start(t.onStart);
  const samplesMs: number[] = [];
  const deadline = performance.now() + durationMs;
  try {
    while (performance.now() < deadline) samplesMs.push(await t.one(driver));
  } catch (err) {
    return { samplesMs, errors: 1, error: message(err) };
  } finally {
    await driver.stop();
  }
  return { samplesMs, errors: 0 };
}

/**
 * Half load: jobs are added at a fixed rate, {@link LOAD_SHARE} of the library's end-to-end capacity (the latest
 * figure of its end-to-end row in this run, or measured at set-up), each add sent without waiting for the previous
 * one; the samples are add → start of every job started inside the window, so "p50 / p99 @50" of this row is the
 * add-to-start latency at that rate.
 */
export async function halfLoad(
  ctx: SetupContext,
  driver: JobQueueDriver,
  library: "coordis" | "bullmq",
): Promise<ScenarioInstance> {
  const caps = await capacities(ctx);
  if (!caps.has(library)) {
    // Nothing measured yet (set-up runs before every round): short end-to-end runs of its own, longer each time
    // until one starts a job (a slow machine may start none in the first 100 ms).
    const probe = endToEnd(driver, (v) => caps.set(library, v));
    for (let ms = ctx.smoke ? 100 : 1_000; !caps.has(library) && ms <= 10_000; ms *= 4) {
      const r = await probe.throughput?.(ms, 50);
      if (r?.error !== undefined) throw new Error(`capacity probe: ${r.error}`);
    }
  }
  const t = new Tracker();
  return {
    async throughput(durationMs): Promise<ThroughputResult> {
      const rate = (caps.get(library) ?? 0) * LOAD_SHARE;
      if (!(rate > 0)) throw new Error(`no end-to-end capacity measured for ${library}`);
      t.clear();
      await driver.start(t.onStart);
      let errors = 0;
      let error: string | undefined;
      try {
        await t.one(driver);
        t.sampling = true;
        const startedBefore = t.started;
        const start = performance.now();
        const end = start + durationMs;
        let sent = 0;
        const pending = new Set<Promise<unknown>>();
        while (error === undefined) {
          const now = performance.now();
          if (now >= end) break;
          const due = Math.floor(((now - start) / 1000) * rate);
          for (; sent < due; sent++) {
            const n = t.seq++;
            t.addedAt.set(n, performance.now());
            const p = driver.add(n).catch((err: unknown) => {
              errors++;
              error ??= message(err);
            });
            pending.add(p);
            void p.finally(() => pending.delete(p));
          }
          await new Promise((resolve) => setTimeout(resolve, TICK_MS));
        }
        const elapsedMs = performance.now() - start;
        const ops = t.started - startedBefore;
        const samplesMs = t.samples;
        t.sampling = false;
        await Promise.all(pending);
        return error === undefined
          ? { ops, elapsedMs, errors, samplesMs }
          : { ops, elapsedMs, errors, samplesMs, error };
      } finally {
        await driver.stop();
      }
    },
    reset: () => driver.clean(),
    latency: (durationMs) => sequentialJobs(driver, t, durationMs),
  };
}

/**
 * Bulk add: each operation adds {@link BULK} jobs in one call; the closed loop's figures are per job (ops/s = jobs/s,
 * CPU per job); latency = one call of {@link BULK} jobs.
 */
export function bulk(driver: BulkDriver): ScenarioInstance {
  const counter = new Counter();
  let next = 0;
  const op = () => {
    const from = next;
    next += BULK;
    return driver.addBulk(from, BULK);
  };
  const close = driver.close;
  return {
    op,
    async throughput(durationMs, concurrency): Promise<ThroughputResult> {
      const r = await closedLoop(op, durationMs, concurrency, counter);
      return { ...r, ops: r.ops * BULK, completed: (r.completed ?? r.ops) * BULK };
    },
    reset: () => driver.reset(),
    ...(close === undefined ? {} : { teardown: () => close.call(driver) }),
    async countOps(count) {
      for (let done = 0; done < count; done += BULK) {
        const n = Math.min(BULK, count - done);
        await driver.addBulk(next, n);
        next += n;
      }
    },
  };
}
