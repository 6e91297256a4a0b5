/**
 * packages/queue README, "From BullMQ": each mapping run side by side, BullMQ (the installed devDependency) and
 * @coordis/queue on one real Redis, on the same scenario, checking that what the table says carries over does, and
 * that where it says the two differ, they differ as described.
 */
import { connect, type RedisClient, safeRedisOptions } from "@coordis/core";
import {
  UnrecoverableError as CoordisUnrecoverableError,
  DEFAULT_ATTEMPTS,
  type Job,
  JobCancelledError,
  JobDeadError,
  MAX_PRIORITY,
  Queue,
  type QueueOptions,
  Worker,
  type WorkerOptions,
} from "@coordis/queue";
import { eventually, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import {
  type Job as BullJob,
  Queue as BullQueue,
  QueueEvents as BullQueueEvents,
  Worker as BullWorker,
  type JobsOptions,
  UnrecoverableError,
} from "bullmq";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

let server: RedisServer;
let redis: RedisClient;
let bullConnection: Redis;
const prefix = testPrefix("mig-bull");
const bullPrefix = `${prefix}-bull`;

beforeAll(async () => {
  // BullMQ needs commands the suite's least-privilege user is not granted: an unrestricted server of this file's own.
  server = await startRedis();
  redis = connect(server.url);
  // What BullMQ requires of its connections (its workers issue blocking commands).
  bullConnection = new Redis(server.url, { maxRetriesPerRequest: null });
});

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  // Workers first (they may still be finishing a job), then queues and event readers.
  for (const close of closers.splice(0).reverse()) await close();
});
afterAll(async () => {
  bullConnection?.disconnect();
  redis?.disconnect();
  await server?.stop();
});

let n = 0;
const uniqueName = (label: string) => `${label}-${++n}`;

/** Both sides of one scenario, under one queue name. */
function sides<T, R>(
  label: string,
  options: { coordis?: QueueOptions<T, R>; bull?: { defaultJobOptions?: JobsOptions } } = {},
) {
  const name = uniqueName(label);
  const bull = new BullQueue<T, R>(name, { connection: bullConnection, prefix: bullPrefix, ...options.bull });
  const coordis = new Queue<T, R>(redis, name, { prefix, ...options.coordis });
  closers.push(
    () => bull.close(),
    () => coordis.close(),
  );
  return {
    name,
    bull,
    coordis,
    bullWorker(processor: (job: BullJob<T, R>) => Promise<R>, opts: { concurrency?: number } = {}) {
      const w = new BullWorker<T, R>(name, processor, { connection: bullConnection, prefix: bullPrefix, ...opts });
      closers.push(() => w.close());
      return w;
    },
    coordisWorker(handler: (job: Job<T>) => Promise<R>, opts: WorkerOptions<T, R> = {}) {
      const w = new Worker<T, R>(redis, name, handler, { prefix, schedules: false, ...opts });
      closers.push(() => w.close({ timeoutMs: 1_000 }));
      return w;
    },
    async bullEvents() {
      const events = new BullQueueEvents(name, { connection: bullConnection, prefix: bullPrefix });
      closers.push(() => events.close());
      await events.waitUntilReady();
      return events;
    },
  };
}

describe("BullMQ → @coordis/queue", () => {
  it("add(name, data) + waitUntilFinished → add(data) + result(id): the handler's result comes back", async () => {
    const s = sides<{ to: string }, string>("result");
    const events = await s.bullEvents();
    s.bullWorker(async (job) => `sent to ${job.data.to}`);
    s.coordisWorker(async (job) => `sent to ${job.data.to}`);

    const bullJob = await s.bull.add("email", { to: "ada" });
    const { id } = await s.coordis.add({ to: "ada" });

    expect(await bullJob.waitUntilFinished(events, 5_000)).toBe("sent to ada");
    expect(await s.coordis.result(id, { timeoutMs: 5_000 })).toBe("sent to ada");
  });

  it("new Queue(name, { connection }) → new Queue(redis, name): a BullMQ connection draws COORDIS_UNSAFE_CLIENT, connect()'s none", async () => {
    const codes: string[] = [];
    const onWarning = (w: Error & { code?: string }) => void codes.push(w.code ?? "");
    process.on("warning", onWarning);
    try {
      const name = uniqueName("connection");
      // A connection BullMQ would use (no command timeout): the queue works, with a warning.
      const bullStyle = new Redis(server.url, { maxRetriesPerRequest: null });
      closers.push(async () => bullStyle.disconnect());
      const q = new Queue<string, void>(bullStyle, name, { prefix });
      closers.push(() => q.close());
      expect((await q.add("x")).duplicate).toBe(false);
      await waitUntil("the unsafe-client warning", () => codes.includes("COORDIS_UNSAFE_CLIENT"));
      const safe = new Redis(server.url, { ...safeRedisOptions });
      closers.push(async () => safe.disconnect());
      const q2 = new Queue<string, void>(safe, name, { prefix });
      closers.push(() => q2.close());
      const count = codes.length;
      expect((await q2.add("y")).duplicate).toBe(false);
      expect((await q2.counts()).waiting).toBe(2);
      // (Warnings are emitted on the next tick: the add's round trip has let them out.)
      expect(codes.length).toBe(count);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("jobId → id: the same id again creates nothing and keeps the first job's data", async () => {
    const s = sides<{ v: number }, void>("ids");
    const first = await s.bull.add("j", { v: 1 }, { jobId: "order-1" });
    const again = await s.bull.add("j", { v: 2 }, { jobId: "order-1" });
    expect(again.id).toBe(first.id);
    expect((await s.bull.getJob("order-1"))?.data).toEqual({ v: 1 });
    expect(await s.bull.getJobCounts("waiting")).toEqual({ waiting: 1 });

    expect(await s.coordis.add({ v: 1 }, { id: "order-1" })).toMatchObject({ id: "order-1", duplicate: false });
    expect(await s.coordis.add({ v: 2 }, { id: "order-1" })).toMatchObject({ id: "order-1", duplicate: true });
    expect((await s.coordis.get("order-1"))?.data).toEqual({ v: 1 });
    expect((await s.coordis.counts()).waiting).toBe(1);
  });

  it("deduplication { id } → id: both ignore adds while the job waits; after it completes BullMQ adds again, Coordis does not", async () => {
    const s = sides<number, number>("dedup");
    const events = await s.bullEvents();
    const first = await s.bull.add("j", 1, { deduplication: { id: "d" } });
    const second = await s.bull.add("j", 2, { deduplication: { id: "d" } });
    expect(second.id).toBe(first.id);
    expect(await s.coordis.add(1, { id: "d" })).toMatchObject({ duplicate: false });
    expect(await s.coordis.add(2, { id: "d" })).toMatchObject({ duplicate: true });

    s.bullWorker(async (job) => job.data);
    s.coordisWorker(async (job) => job.data);
    expect(await first.waitUntilFinished(events, 5_000)).toBe(1);
    expect(await s.coordis.result("d", { timeoutMs: 5_000 })).toBe(1);

    const third = await s.bull.add("j", 3, { deduplication: { id: "d" } });
    expect(third.id).not.toBe(first.id);
    expect(await third.waitUntilFinished(events, 5_000)).toBe(3);
    // A completed job keeps its id taken for its resultTtlMs (or until retention drops it).
    expect(await s.coordis.add(3, { id: "d" })).toMatchObject({ duplicate: true });
    expect(await s.coordis.result("d", { timeoutMs: 5_000 })).toBe(1);
  });

  it("sizeLimit → maxPayloadBytes: an add over the limit is refused, nothing stored", async () => {
    const s = sides<string, void>("size", { coordis: { maxPayloadBytes: 64 } });
    const big = "x".repeat(100);
    await expect(s.bull.add("j", big, { sizeLimit: 64 })).rejects.toThrow();
    await expect(s.coordis.add(big)).rejects.toThrow(/data/);
    expect(await s.bull.getJobCounts("waiting")).toEqual({ waiting: 0 });
    expect((await s.coordis.counts()).waiting).toBe(0);
  });

  it("attempts + backoff → attempts + backoff { type, delayMs }: a job failing twice succeeds at its third attempt", async () => {
    const s = sides<string, string>("retries");
    const events = await s.bullEvents();
    const bullSeen: number[] = [];
    const coordisSeen: number[] = [];
    s.bullWorker(async (job) => {
      bullSeen.push(job.attemptsMade);
      if (bullSeen.length < 3) throw new Error(`boom ${bullSeen.length}`);
      return "done";
    });
    s.coordisWorker(async (job) => {
      coordisSeen.push(job.attempt);
      if (coordisSeen.length < 3) throw new Error(`boom ${coordisSeen.length}`);
      return "done";
    });

    const bullJob = await s.bull.add("j", "x", { attempts: 3, backoff: { type: "fixed", delay: 20 } });
    const { id } = await s.coordis.add("x", { attempts: 3, backoff: { type: "fixed", delayMs: 20 } });

    expect(await bullJob.waitUntilFinished(events, 5_000)).toBe("done");
    expect(await s.coordis.result(id, { timeoutMs: 5_000 })).toBe("done");
    // job.attemptsMade counts the earlier attempts; job.attempt numbers this one from 1.
    expect(bullSeen).toEqual([0, 1, 2]);
    expect(coordisSeen).toEqual([1, 2, 3]);
    expect((await s.coordis.get(id))?.attempts).toBe(3);
  });

  it("attempts exhausted: BullMQ's failed job ↔ a dead job (JobDeadError, deadLetters, retryDead)", async () => {
    const s = sides<string, string>("dead");
    const events = await s.bullEvents();
    let bullRuns = 0;
    let coordisRuns = 0;
    s.bullWorker(async () => {
      bullRuns++;
      if (bullRuns <= 2) throw new Error("quota");
      return "ok";
    });
    s.coordisWorker(async () => {
      coordisRuns++;
      if (coordisRuns <= 2) throw new Error("quota");
      return "ok";
    });

    const bullJob = await s.bull.add("j", "x", { attempts: 2, backoff: 10 });
    const { id } = await s.coordis.add("x", { attempts: 2, backoff: { type: "fixed", delayMs: 10 } });

    await expect(bullJob.waitUntilFinished(events, 5_000)).rejects.toThrow("quota");
    const failed = await s.bull.getJob(bullJob.id as string);
    expect([await failed?.getState(), failed?.attemptsMade, failed?.failedReason]).toEqual(["failed", 2, "quota"]);

    const dead = await s.coordis.result(id, { timeoutMs: 5_000 }).catch((e: unknown) => e);
    expect(dead).toBeInstanceOf(JobDeadError);
    // BullMQ's failedReason is the message; Coordis records "<name>: <message>".
    expect(dead).toMatchObject({ attempts: 2, lastError: "Error: quota" });
    expect((await s.coordis.deadLetters()).jobs.map((j) => j.id)).toEqual([id]);

    // failed set + job.retry() → deadLetters() + retryDead(id): the job runs again (a third time) and completes.
    await failed?.retry();
    expect(await s.coordis.retryDead(id)).toBe(true);
    await waitUntil("BullMQ's retried job to complete", async () => (await failed?.getState()) === "completed");
    expect(await s.coordis.result(id, { timeoutMs: 5_000 })).toBe("ok");
    expect([bullRuns, coordisRuns]).toEqual([3, 3]);
  });

  it("default attempts differ: BullMQ 1 (no retry), Coordis 3; defaults { attempts: 1 } restores BullMQ's", async () => {
    const plain = sides<string, void>("default-attempts");
    const kept = sides<string, void>("defaults-one", {
      coordis: { defaults: { attempts: 1 } },
      bull: { defaultJobOptions: { attempts: 1 } },
    });
    const plainEvents = await plain.bullEvents();
    plain.bullWorker(async () => {
      throw new Error("nope");
    });
    const coordisFailures: number[] = [];
    plain.coordisWorker(async (job) => {
      coordisFailures.push(job.maxAttempts);
      throw new Error("nope");
    });
    const bullJob = await plain.bull.add("j", "x");
    const { id } = await plain.coordis.add("x");
    await expect(bullJob.waitUntilFinished(plainEvents, 5_000)).rejects.toThrow("nope");
    expect((await plain.bull.getJob(bullJob.id as string))?.attemptsMade).toBe(1);
    // Coordis: the first failure schedules a retry (exponential backoff from 1 s) instead of ending the job.
    await waitUntil(
      "the first Coordis failure to be recorded",
      async () => (await plain.coordis.get(id))?.attempts === 1,
    );
    expect(await plain.coordis.get(id)).toMatchObject({ state: "delayed", maxAttempts: DEFAULT_ATTEMPTS });
    expect(coordisFailures).toEqual([3]);
    expect(DEFAULT_ATTEMPTS).toBe(3);

    // With defaults { attempts: 1 }, a throwing handler ends the job at its first failure, as BullMQ's default does.
    const events = await kept.bullEvents();
    kept.bullWorker(async () => {
      throw new Error("nope");
    });
    kept.coordisWorker(async () => {
      throw new Error("nope");
    });
    const b = await kept.bull.add("j", "x");
    const c = await kept.coordis.add("x");
    await expect(b.waitUntilFinished(events, 5_000)).rejects.toThrow("nope");
    await expect(kept.coordis.result(c.id, { timeoutMs: 5_000 })).rejects.toMatchObject({ attempts: 1 });
  });

  it("priority: 0 first, then the lower number first, on both sides (BullMQ 1 ↔ Coordis 1 … up to 9)", async () => {
    const s = sides<number, void>("priority");
    // Added before any worker runs, so the order seen is the queue's order.
    for (const p of [3, 0, 9, 1, 0, 2]) {
      await s.bull.add("j", p, { priority: p });
      await s.coordis.add(p, { priority: p });
    }
    const bullOrder: number[] = [];
    const coordisOrder: number[] = [];
    s.bullWorker(async (job) => void bullOrder.push(job.data), { concurrency: 1 });
    s.coordisWorker(async (job) => void coordisOrder.push(job.data), { concurrency: 1 });
    await waitUntil("both queues to drain", () => bullOrder.length === 6 && coordisOrder.length === 6);
    expect(bullOrder).toEqual([0, 0, 1, 2, 3, 9]);
    expect(coordisOrder).toEqual(bullOrder);
    // BullMQ takes priorities up to 2,097,151; Coordis refuses what is past 9.
    await expect(s.coordis.add(0, { priority: MAX_PRIORITY + 1 })).rejects.toThrow(/priority/);
  });

  it("delay → delayMs: the job is delayed, then runs", async () => {
    const s = sides<string, string>("delay");
    const events = await s.bullEvents();
    const bullJob = await s.bull.add("j", "x", { delay: 300 });
    const { id } = await s.coordis.add("x", { delayMs: 300 });
    expect(await bullJob.getState()).toBe("delayed");
    expect((await s.coordis.get(id))?.state).toBe("delayed");
    s.bullWorker(async () => "late");
    s.coordisWorker(async () => "late");
    expect(await bullJob.waitUntilFinished(events, 5_000)).toBe("late");
    expect(await s.coordis.result(id, { timeoutMs: 5_000 })).toBe("late");
  });

  it("removeOnComplete → retention { completed: 0 }: the finished job's record is gone; kept by default on both", async () => {
    const removed = sides<string, string>("remove-on-complete");
    const kept = sides<string, string>("kept");
    const eventsKept = await kept.bullEvents();
    const ran: string[] = [];
    removed.bullWorker(async () => {
      ran.push("bull");
      return "r";
    });
    kept.bullWorker(async () => "k");
    removed.coordisWorker(
      async () => {
        ran.push("coordis");
        return "r";
      },
      { retention: { completed: 0 } },
    );
    kept.coordisWorker(async () => "k");

    const b1 = await removed.bull.add("j", "x", { removeOnComplete: true });
    const b2 = await kept.bull.add("j", "x");
    const c1 = await removed.coordis.add("x");
    const c2 = await kept.coordis.add("x");
    // (waitUntilFinished may find a job removed on completion gone already: "Missing key for job".)
    await waitUntil(
      "BullMQ's removed job to be gone",
      async () => (await removed.bull.getJob(b1.id as string)) === undefined,
    );
    await waitUntil("Coordis' job to be gone", async () => (await removed.coordis.get(c1.id)) === null);
    expect(ran.sort()).toEqual(["bull", "coordis"]);
    expect(await b2.waitUntilFinished(eventsKept, 5_000)).toBe("k");
    expect((await kept.bull.getJob(b2.id as string))?.returnvalue).toBe("k");
    expect(await kept.coordis.result(c2.id, { timeoutMs: 5_000 })).toBe("k");
    expect(await kept.coordis.get(c2.id)).toMatchObject({ state: "completed", result: "k" });
  });

  it("removeOnFail → retention { dead: 0 }: a job that fails for good leaves no record", async () => {
    const s = sides<string, void>("remove-on-fail");
    const failed: string[] = [];
    s.bullWorker(async () => {
      failed.push("bull");
      throw new Error("nope");
    });
    s.coordisWorker(
      async () => {
        failed.push("coordis");
        throw new Error("nope");
      },
      { retention: { dead: 0 } },
    );
    const b = await s.bull.add("j", "x", { removeOnFail: true });
    const { id } = await s.coordis.add("x", { attempts: 1 });
    await waitUntil("BullMQ's failed job to be gone", async () => (await s.bull.getJob(b.id as string)) === undefined);
    await waitUntil("Coordis' dead job to be gone", async () => (await s.coordis.get(id)) === null);
    expect(failed.sort()).toEqual(["bull", "coordis"]);
    expect((await s.coordis.deadLetters()).jobs).toEqual([]);
  });

  it("Worker concurrency: at most `concurrency` handlers at once, and that many do run at once", async () => {
    const s = sides<number, void>("concurrency");
    for (let i = 0; i < 6; i++) {
      await s.bull.add("j", i);
      await s.coordis.add(i);
    }
    const track = () => {
      const state = { running: 0, max: 0, done: 0, release: () => {} };
      let opened = false;
      let openGate!: () => void;
      const gateOpen = new Promise<void>((r) => {
        openGate = r;
      });
      state.release = () => {
        opened = true;
        openGate();
      };
      const handler = async () => {
        state.running++;
        state.max = Math.max(state.max, state.running);
        if (!opened) await gateOpen;
        state.running--;
        state.done++;
      };
      return { state, handler };
    };
    const b = track();
    const c = track();
    s.bullWorker(b.handler, { concurrency: 3 });
    s.coordisWorker(c.handler, { concurrency: 3 });
    await waitUntil("three handlers of each to run at once", () => b.state.running === 3 && c.state.running === 3);
    b.state.release();
    c.state.release();
    await waitUntil("both queues to drain", () => b.state.done === 6 && c.state.done === 6);
    expect([b.state.max, c.state.max]).toEqual([3, 3]);
  });

  it("job.updateProgress(v) → job.progress(v): stored and read back with getJob ↔ get", async () => {
    const s = sides<string, void>("progress");
    let releaseBull!: () => void;
    let releaseCoordis!: () => void;
    const bullHeld = new Promise<void>((r) => {
      releaseBull = r;
    });
    const coordisHeld = new Promise<void>((r) => {
      releaseCoordis = r;
    });
    s.bullWorker(async (job) => {
      await job.updateProgress({ pct: 50 });
      await bullHeld;
    });
    let stored: boolean | undefined;
    s.coordisWorker(async ({ progress }) => {
      stored = await progress({ pct: 50 });
      await coordisHeld;
    });
    const b = await s.bull.add("j", "x");
    const { id } = await s.coordis.add("x");
    await waitUntil("BullMQ's progress", async () => (await s.bull.getJob(b.id as string))?.progress !== 0);
    await waitUntil("Coordis' progress", async () => (await s.coordis.get(id))?.progress !== undefined);
    expect((await s.bull.getJob(b.id as string))?.progress).toEqual({ pct: 50 });
    expect(stored).toBe(true);
    expect(await s.coordis.get(id)).toMatchObject({ state: "active", progress: { pct: 50 } });
    releaseBull();
    releaseCoordis();
  });

  it("getJob(id) → get(id): undefined ↔ null for an unknown id; getJobCounts() → counts()", async () => {
    const s = sides<string, void>("get");
    expect(await s.bull.getJob("nope")).toBeUndefined();
    expect(await s.coordis.get("nope")).toBeNull();
    await s.bull.add("j", "a", { jobId: "a" });
    await s.bull.add("j", "b", { jobId: "b", delay: 60_000 });
    await s.coordis.add("a", { id: "a" });
    await s.coordis.add("b", { id: "b", delayMs: 60_000 });
    expect((await s.bull.getJob("a"))?.data).toBe("a");
    expect(await s.coordis.get("a")).toMatchObject({ id: "a", data: "a", state: "waiting" });
    expect(await s.bull.getJobCounts("waiting", "delayed")).toEqual({ waiting: 1, delayed: 1 });
    expect(await s.coordis.counts()).toMatchObject({ waiting: 1, delayed: 1, active: 0 });
  });

  it("addBulk(jobs) → addMany(items)", async () => {
    const s = sides<number, void>("bulk");
    const bullJobs = await s.bull.addBulk([
      { name: "j", data: 1, opts: { jobId: "one" } },
      { name: "j", data: 2 },
    ]);
    const added = await s.coordis.addMany([{ data: 1, opts: { id: "one" } }, { data: 2 }]);
    expect(bullJobs.map((j) => j.data)).toEqual([1, 2]);
    expect(added.map((a) => a.duplicate)).toEqual([false, false]);
    expect(added[0]?.id).toBe("one");
    expect((await s.coordis.counts()).waiting).toBe(2);
  });

  it("pause() / resume(): a job added while paused waits, then runs after resume", async () => {
    const s = sides<string, string>("pause");
    const events = await s.bullEvents();
    await s.bull.pause();
    await s.coordis.pause();
    expect(await s.bull.isPaused()).toBe(true);
    expect((await s.coordis.counts()).paused).toBe(true);
    const b = await s.bull.add("j", "x");
    const { id } = await s.coordis.add("x");
    s.bullWorker(async () => "resumed");
    s.coordisWorker(async () => "resumed");
    expect(await b.getState()).toBe("waiting");
    expect((await s.coordis.get(id))?.state).toBe("waiting");
    await s.bull.resume();
    await s.coordis.resume();
    expect(await b.waitUntilFinished(events, 5_000)).toBe("resumed");
    expect(await s.coordis.result(id, { timeoutMs: 5_000 })).toBe("resumed");
  });

  it("job.remove() → cancel(id): a waiting job never runs", async () => {
    const s = sides<string, void>("remove");
    const b = await s.bull.add("j", "x", { jobId: "gone" });
    await s.coordis.add("x", { id: "gone" });
    await b.remove();
    expect(await s.coordis.cancel("gone")).toBe(true);
    expect(await s.bull.getJob("gone")).toBeUndefined();
    expect((await s.coordis.get("gone"))?.state).toBe("cancelled");
    await expect(s.coordis.result("gone", { timeoutMs: 1_000 })).rejects.toBeInstanceOf(JobCancelledError);
  });

  it("throw new UnrecoverableError() → the same, from @coordis/queue: one attempt, no retry, dead", async () => {
    const s = sides<string, void>("unrecoverable");
    const events = await s.bullEvents();
    let bullRuns = 0;
    let coordisRuns = 0;
    s.bullWorker(async () => {
      bullRuns++;
      throw new UnrecoverableError("bad input");
    });
    s.coordisWorker(async () => {
      coordisRuns++;
      throw new CoordisUnrecoverableError("bad input");
    });
    const b = await s.bull.add("j", "x", { attempts: 3, backoff: 10 });
    const { id } = await s.coordis.add("x", { attempts: 3, backoff: { type: "fixed", delayMs: 10 } });
    await expect(b.waitUntilFinished(events, 5_000)).rejects.toThrow("bad input");
    await expect(s.coordis.result(id, { timeoutMs: 5_000 })).rejects.toBeInstanceOf(JobDeadError);
    expect(await b.getState()).toBe("failed");
    expect((await s.coordis.get(id))?.state).toBe("dead");
    expect([bullRuns, coordisRuns]).toEqual([1, 1]);
  });

  it("BullMQ's own UnrecoverableError thrown in a Coordis handler (code moved as is) is recognised too", async () => {
    const s = sides<string, void>("unrecoverable-bull-class");
    let runs = 0;
    s.coordisWorker(async () => {
      runs++;
      throw new UnrecoverableError("bad input");
    });
    const { id } = await s.coordis.add("x", { attempts: 3, backoff: { type: "fixed", delayMs: 10 } });
    await expect(s.coordis.result(id, { timeoutMs: 5_000 })).rejects.toBeInstanceOf(JobDeadError);
    expect(runs).toBe(1);
  });

  it("worker limiter { max, duration } → defaults { group } + groups { rateLimit }: the window admits max jobs", async () => {
    const s = sides<number, void>("limiter", { coordis: { defaults: { group: "all" } } });
    const bullRan: number[] = [];
    const coordisRan: number[] = [];
    // A window far longer than the test: what ran is what the window admitted.
    const w = new BullWorker<number, void>(s.name, async (job) => void bullRan.push(job.data), {
      connection: bullConnection,
      prefix: bullPrefix,
      limiter: { max: 2, duration: 60_000 },
    });
    closers.push(() => w.close());
    s.coordisWorker(async (job) => void coordisRan.push(job.data), {
      groups: { rateLimit: [{ limit: 2, windowMs: 60_000 }] },
    });
    for (let i = 1; i <= 3; i++) {
      await s.bull.add("j", i);
      await s.coordis.add(i);
    }
    await waitUntil("two jobs of each to run", () => bullRan.length === 2 && coordisRan.length === 2);
    await waitUntil("BullMQ to be rate limited", async () => (await s.bull.getRateLimitTtl()) > 0);
    const third = await eventually("Coordis' third job to be held back", async () => {
      const counts = await s.coordis.counts();
      return counts.completed === 2 && counts.waiting + counts.delayed === 1 ? counts : undefined;
    });
    expect(third.active).toBe(0);
    expect(await s.bull.getJobCounts("completed", "waiting", "active")).toEqual({
      completed: 2,
      waiting: 1,
      active: 0,
    });
    expect([bullRan, coordisRan]).toEqual([
      [1, 2],
      [1, 2],
    ]);
  });

  it("upsertJobScheduler(id, { every }, { data }) → schedule(name, { everyMs }, data): jobs made with the data", async () => {
    const s = sides<{ digest: string }, void>("schedule");
    const bullSeen: string[] = [];
    const coordisSeen: Array<{ id: string; digest: string }> = [];
    await s.bull.upsertJobScheduler("digest", { every: 1_000 }, { name: "digest", data: { digest: "daily" } });
    expect(await s.coordis.schedule("digest", { everyMs: 1_000 }, { digest: "daily" })).toBe(true);
    s.bullWorker(async (job) => void bullSeen.push(job.data.digest));
    s.coordisWorker(async (job) => void coordisSeen.push({ id: job.id, digest: job.data.digest }), {
      schedules: true,
    });
    await waitUntil("a run of each schedule", () => bullSeen.length >= 1 && coordisSeen.length >= 1);
    expect(bullSeen[0]).toBe("daily");
    expect(coordisSeen[0]?.digest).toBe("daily");
    expect(coordisSeen[0]?.id.startsWith("{schedule:digest}")).toBe(true);
    expect(await s.coordis.unschedule("digest")).toBe(true);
    expect(await s.bull.removeJobScheduler("digest")).toBe(true);
  });
});
