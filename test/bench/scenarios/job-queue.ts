import { performance } from "node:perf_hooks";
import { Queue as BullQueue, Worker as BullWorker } from "bullmq";
import type { Redis } from "ioredis";
import { type CommonOptions, coordisExports } from "../coordis.js";
import { Counter, closedLoop } from "../measure.js";
import type { LatencyResult, Scenario, ScenarioInstance, SetupContext, ThroughputResult } from "../types.js";

const GROUP = "job queue";
/** Two workers of 50 handlers each, as the performance goal is stated. */
const WORKERS = 2;
const CONCURRENCY = 50;
/** Jobs per bulk add. */
const BULK = 100;
/** End to end: producers wait while this many jobs are added and not yet started (the queue does not just grow). */
const MAX_BACKLOG = 2_000;
/** Half load: the fixed rate is this share of the library's end-to-end capacity measured in the same run. */
const LOAD_SHARE = 0.5;
/** Half load: the producer's tick, ms (each tick adds the jobs the rate asks for by then). */
const TICK_MS = 5;
/** One job not started within this time fails the row, ms. */
const JOB_TIMEOUT_MS = 10_000;

const E2E_RAW = "queue/raw-streams";
const BULK_RAW = "job-queue/raw-xadd-pipeline";

/** `@coordis/queue` as these scenarios use it (structural: the package may not exist yet). */
interface QueueModule {
  Queue: new (
    redis: unknown,
    name: string,
    options?: CommonOptions,
  ) => {
    add(data: unknown): Promise<{ id: string; duplicate: boolean }>;
    addMany(items: { data: unknown }[]): Promise<unknown[]>;
    close(): Promise<void>;
  };
  Worker: new (
    redis: unknown,
    name: string,
    handler: (job: { data: unknown }) => unknown,
    options?: CommonOptions & { concurrency?: number; schedules?: boolean },
  ) => { close(options?: { timeoutMs?: number }): Promise<void> };
}

/** A queue library driven end to end: jobs are numbered, `onStart(n)` fires when a handler starts job n. */
interface JobQueueDriver {
  /** Starts {@link WORKERS} workers on a fresh, empty queue; each handler calls `onStart` and returns `n` (kept). */
  start(onStart: (n: number) => void): Promise<void>;
  /** Adds job `n`. */
  add(n: number): Promise<unknown>;
  /** Stops the workers (jobs not started stay behind; the next start uses a fresh queue). */
  stop(): Promise<void>;
  /** Untimed, between measurements: drops the keys of the queues used so far. */
  clean(): Promise<void>;
}

/** A producer of bulk adds: `addBulk(from, count)` adds jobs `from .. from + count - 1` in one call. */
interface BulkDriver {
  addBulk(from: number, count: number): Promise<unknown>;
  /** Untimed: a fresh queue, the old one's keys dropped. */
  reset(): Promise<void>;
}

function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Deletes every key under `prefix` (untimed clean-up between rounds; DEL, not UNLINK: freeing the memory in the background would cost Redis CPU inside the next measurement). */
async function dropKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1_000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

/** Jobs/s each library reached end to end in this run (the half-load rows drive half of it). */
type Capacities = Map<"coordis" | "bullmq", number>;
const capacities = (ctx: SetupContext) => ctx.shared<Capacities>("job-queue-capacity", async () => new Map());

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
function endToEnd(driver: JobQueueDriver, record?: (jobsPerSec: number) => void): ScenarioInstance {
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
async function halfLoad(
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
function bulk(driver: BulkDriver): ScenarioInstance {
  const counter = new Counter();
  let next = 0;
  const op = () => {
    const from = next;
    next += BULK;
    return driver.addBulk(from, BULK);
  };
  return {
    op,
    async throughput(durationMs, concurrency): Promise<ThroughputResult> {
      const r = await closedLoop(op, durationMs, concurrency, counter);
      return { ...r, ops: r.ops * BULK, completed: (r.completed ?? r.ops) * BULK };
    },
    reset: () => driver.reset(),
    async countOps(count) {
      for (let done = 0; done < count; done += BULK) {
        const n = Math.min(BULK, count - done);
        await driver.addBulk(next, n);
        next += n;
      }
    },
  };
}

async function coordisQueue(): Promise<QueueModule> {
  return coordisExports<QueueModule>("queue", ["Queue", "Worker"]);
}

function coordisDriver(ctx: SetupContext, mod: QueueModule): JobQueueDriver {
  const producer = ctx.client();
  const workerConnections = Array.from({ length: WORKERS }, () => ctx.client());
  let round = 0;
  let name = "";
  let queue: InstanceType<QueueModule["Queue"]> | undefined;
  let workers: InstanceType<QueueModule["Worker"]>[] = [];
  return {
    async start(onStart) {
      name = `jobs-${round++}`;
      queue = new mod.Queue(producer, name, { prefix: ctx.prefix });
      workers = workerConnections.map(
        (conn) =>
          new mod.Worker(
            conn,
            name,
            (job) => {
              const n = (job.data as { n: number }).n;
              onStart(n);
              return n;
            },
            { prefix: ctx.prefix, concurrency: CONCURRENCY, schedules: false },
          ),
      );
    },
    add(n) {
      if (queue === undefined) throw new Error("queue not started");
      return queue.add({ n });
    },
    async stop() {
      await Promise.all(workers.map((w) => w.close({ timeoutMs: 0 })));
      await queue?.close();
      workers = [];
      queue = undefined;
    },
    clean: () => dropKeys(producer, ctx.prefix),
  };
}

function bullmqDriver(ctx: SetupContext): JobQueueDriver {
  // BullMQ wants maxRetriesPerRequest: null on its connections (workers issue blocking commands); each worker gets
  // its own connection (BullMQ duplicates it for its blocking reads), as the Coordis workers do.
  const connection = ctx.client(ctx.single, { maxRetriesPerRequest: null });
  const workerConnections = Array.from({ length: WORKERS }, () =>
    ctx.client(ctx.single, { maxRetriesPerRequest: null }),
  );
  let round = 0;
  let queue: BullQueue | undefined;
  let workers: BullWorker[] = [];
  return {
    async start(onStart) {
      const name = `jobs-${round++}`;
      // BullMQ's defaults: completed jobs and their return values are kept.
      queue = new BullQueue(name, { connection, prefix: ctx.prefix });
      workers = workerConnections.map((conn) => {
        const w = new BullWorker(
          name,
          async (job) => {
            const n = (job.data as { n: number }).n;
            onStart(n);
            return n;
          },
          { connection: conn, prefix: ctx.prefix, concurrency: CONCURRENCY },
        );
        w.on("error", () => {});
        return w;
      });
      await Promise.all([queue.waitUntilReady(), ...workers.map((w) => w.waitUntilReady())]);
    },
    add(n) {
      if (queue === undefined) throw new Error("queue not started");
      return queue.add("job", { n });
    },
    async stop() {
      await Promise.all(workers.map((w) => w.close(true)));
      await queue?.close();
      workers = [];
      queue = undefined;
    },
    clean: () => dropKeys(connection, ctx.prefix),
  };
}

/** End-to-end row ids, by library (the half-load rows read their capacity). */
const E2E = { bullmq: "job-queue/bullmq-e2e", coordis: "job-queue/coordis-e2e" } as const;
const BULK_IDS = { bullmq: "job-queue/bullmq-add-bulk", coordis: "job-queue/coordis-add-many" } as const;
const HALF = { bullmq: "job-queue/bullmq-half-load", coordis: "job-queue/coordis-half-load" } as const;

/**
 * Job queue, @coordis/queue against BullMQ in the same rounds: end to end (add + process + complete, results kept) with
 * 2 workers × concurrency 50; bulk add (addMany vs addBulk, 100 jobs per call); add-to-start latency at half of each
 * library's end-to-end capacity. Redis CPU per job is the harness' Redis CPU column of the end-to-end rows.
 */
export function jobQueueScenarios(): Scenario[] {
  const e2eName = `add + process + complete, results kept (${WORKERS} workers × concurrency ${CONCURRENCY})`;
  return [
    {
      id: E2E.bullmq,
      group: GROUP,
      name: `BullMQ Queue.add + Worker: ${e2eName}`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: E2E_RAW,
      async setup(ctx) {
        const caps = await capacities(ctx);
        return endToEnd(bullmqDriver(ctx), (v) => caps.set("bullmq", v));
      },
    },
    {
      id: E2E.coordis,
      group: GROUP,
      name: `Coordis Queue.add + Worker: ${e2eName}`,
      kind: "coordis",
      topology: "single",
      unit: "jobs",
      baseline: E2E_RAW,
      reference: E2E.bullmq,
      async setup(ctx) {
        const mod = await coordisQueue();
        const caps = await capacities(ctx);
        return endToEnd(coordisDriver(ctx, mod), (v) => caps.set("coordis", v));
      },
    },
    {
      id: BULK_RAW,
      group: GROUP,
      name: `raw pipeline of ${BULK} XADD (bulk add floor)`,
      kind: "raw",
      topology: "single",
      unit: "jobs",
      async setup(ctx) {
        const redis = ctx.client();
        let round = 0;
        let key = `${ctx.prefix}:s${round}`;
        return bulk({
          addBulk(from, count) {
            const p = redis.pipeline();
            for (let i = 0; i < count; i++) p.xadd(key, "*", "n", String(from + i));
            return p.exec();
          },
          async reset() {
            await dropKeys(redis, ctx.prefix);
            key = `${ctx.prefix}:s${++round}`;
          },
        });
      },
    },
    {
      id: BULK_IDS.bullmq,
      group: GROUP,
      name: `BullMQ Queue.addBulk, ${BULK} jobs per call`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: BULK_RAW,
      async setup(ctx) {
        const connection = ctx.client(ctx.single, { maxRetriesPerRequest: null });
        let round = 0;
        let queue = new BullQueue(`bulk-${round}`, { connection, prefix: ctx.prefix });
        await queue.waitUntilReady();
        return {
          ...bulk({
            addBulk(from, count) {
              return queue.addBulk(Array.from({ length: count }, (_, i) => ({ name: "job", data: { n: from + i } })));
            },
            async reset() {
              await queue.close();
              await dropKeys(connection, ctx.prefix);
              queue = new BullQueue(`bulk-${++round}`, { connection, prefix: ctx.prefix });
              await queue.waitUntilReady();
            },
          }),
          teardown: () => queue.close(),
        };
      },
    },
    {
      id: BULK_IDS.coordis,
      group: GROUP,
      name: `Coordis Queue.addMany, ${BULK} jobs per call`,
      kind: "coordis",
      topology: "single",
      unit: "jobs",
      baseline: BULK_RAW,
      reference: BULK_IDS.bullmq,
      async setup(ctx) {
        const mod = await coordisQueue();
        const redis = ctx.client();
        let round = 0;
        let queue = new mod.Queue(redis, `bulk-${round}`, { prefix: ctx.prefix });
        return bulk({
          addBulk(from, count) {
            return queue.addMany(Array.from({ length: count }, (_, i) => ({ data: { n: from + i } })));
          },
          async reset() {
            await dropKeys(redis, ctx.prefix);
            queue = new mod.Queue(redis, `bulk-${++round}`, { prefix: ctx.prefix });
          },
        });
      },
    },
    {
      id: HALF.bullmq,
      group: GROUP,
      name: `BullMQ add → start at ${LOAD_SHARE * 100} % of its end-to-end jobs/s`,
      kind: "peer",
      topology: "single",
      unit: "jobs",
      baseline: E2E.bullmq,
      setup: (ctx) => halfLoad(ctx, bullmqDriver(ctx), "bullmq"),
    },
    {
      id: HALF.coordis,
      group: GROUP,
      name: `Coordis add → start at ${LOAD_SHARE * 100} % of its end-to-end jobs/s`,
      kind: "coordis",
      topology: "single",
      unit: "jobs",
      baseline: E2E.coordis,
      async setup(ctx) {
        return halfLoad(ctx, coordisDriver(ctx, await coordisQueue()), "coordis");
      },
    },
  ];
}
