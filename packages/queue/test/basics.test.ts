import { connect, type RedisClient } from "@coordis/core";
import { type Job, JobCancelledError, JobDeadError, Queue, Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { gate } from "./helpers.js";

const prefix = testPrefix("queue");

describe("Queue and Worker on the shared server", () => {
  let redis: RedisClient;
  const workers: Worker<never, never>[] = [];
  const queues: Queue<never, never>[] = [];
  function track<W>(w: W): W {
    workers.push(w as never);
    return w;
  }
  function q<T, R>(name: string, opts: ConstructorParameters<typeof Queue<T, R>>[2] = {}): Queue<T, R> {
    const queue = new Queue<T, R>(redis, name, { prefix, ...opts });
    queues.push(queue as never);
    return queue;
  }
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close({ timeoutMs: 2_000 })));
  });
  afterAll(async () => {
    for (const queue of queues) await queue.close();
    redis.disconnect();
  });

  it("runs a job and hands its result to result(); the job reads completed with its data and attempts", async () => {
    const queue = q<{ n: number }, number>("basic");
    const seen: Job<{ n: number }>[] = [];
    track(
      new Worker<{ n: number }, number>(
        redis,
        "basic",
        async (job) => {
          seen.push(job);
          return job.data.n * 2;
        },
        { prefix },
      ),
    );
    const serverMs = async () => {
      const [sec, usec] = await redis.time();
      return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    };
    const before = await serverMs();
    const { id, duplicate } = await queue.add({ n: 21 });
    expect(duplicate).toBe(false);
    expect(await queue.result(id, { timeoutMs: 10_000 })).toBe(42);
    const after = await serverMs();
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ id, attempt: 1, maxAttempts: 3, data: { n: 21 } });
    expect(seen[0]?.fence).toBeGreaterThan(0);
    const info = await queue.get(id);
    expect(info).toMatchObject({ id, state: "completed", data: { n: 21 }, result: 42, attempts: 1 });
    expect(info?.finishedAt).toBeGreaterThanOrEqual(before);
    expect(info?.finishedAt).toBeLessThanOrEqual(after);
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1, dead: 0 });
    // Finished: a cancel changes nothing, and the same id again is a duplicate.
    expect(await queue.cancel(id)).toBe(false);
    expect(await queue.get(id)).toMatchObject({ state: "completed", result: 42 });
    expect(await queue.add({ n: 0 }, { id })).toEqual({ id, duplicate: true });
  });

  it("an id added twice is one job: the second add answers duplicate and changes nothing", async () => {
    const queue = q<string, unknown>("idem");
    expect(await queue.add("first", { id: "order-1" })).toEqual({ id: "order-1", duplicate: false });
    expect(await queue.add("second", { id: "order-1", priority: 5 })).toEqual({ id: "order-1", duplicate: true });
    const many = await queue.addMany([
      { data: "a", opts: { id: "order-1" } },
      { data: "b", opts: { id: "order-2" } },
      { data: "c", opts: { id: "order-2" } },
    ]);
    expect(many).toEqual([
      { id: "order-1", duplicate: true },
      { id: "order-2", duplicate: false },
      { id: "order-2", duplicate: true },
    ]);
    expect(await queue.get("order-1")).toMatchObject({ state: "waiting", data: "first", priority: 0 });
    expect((await queue.counts()).waiting).toBe(2);
  });

  it("a job that always fails is retried after its backoff and ends dead after exactly `attempts` tries", async () => {
    const queue = q<null, unknown>("fails");
    const attempts: number[] = [];
    track(
      new Worker<null, never>(
        redis,
        "fails",
        async (job) => {
          attempts.push(job.attempt);
          throw new TypeError(`boom ${job.attempt}`);
        },
        { prefix },
      ),
    );
    const { id } = await queue.add(null, { attempts: 3, backoff: { type: "fixed", delayMs: 50 } });
    const err = await queue.result(id, { timeoutMs: 10_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobDeadError);
    expect((err as JobDeadError).lastError).toBe("TypeError: boom 3");
    expect(attempts).toEqual([1, 2, 3]);
    expect(await queue.get(id)).toMatchObject({ state: "dead", attempts: 3, error: "TypeError: boom 3" });
    const { jobs } = await queue.deadLetters();
    expect(jobs.map((j) => j.id)).toEqual([id]);
    expect(await queue.retryDead(id)).toBe(true);
    await waitUntil("the retried job ran again", () => attempts.length === 6, 10_000);
  });

  it("cancel: a waiting job never runs; a running job's signal aborts and its completion is refused", async () => {
    const queue = q<string, unknown>("cancel");
    expect(await queue.cancel("missing")).toBe(false);
    const later = await queue.add("later", { delayMs: 60_000 });
    expect(await queue.cancel(later.id)).toBe(true);
    expect(await queue.get(later.id)).toMatchObject({ state: "cancelled" });
    await expect(queue.result(later.id)).rejects.toBeInstanceOf(JobCancelledError);
    const started = gate<Job<string>>();
    const aborted = gate<unknown>();
    const worker = track(
      new Worker<string, string>(
        redis,
        "cancel",
        async (job) => {
          started.open(job);
          await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
          aborted.open(job.signal.reason);
          return "too late";
        },
        { prefix, leaseMs: 1_500 },
      ),
    );
    const running = await queue.add("running");
    await started.promise;
    expect(await queue.cancel(running.id)).toBe(true);
    expect(await aborted.promise).toMatchObject({ code: "ERR_JOB_LOST", reason: "cancelled" });
    await waitUntil("the refused completion", () => worker.stats().refused === 1, 10_000);
    expect(await queue.get(running.id)).toMatchObject({ state: "cancelled" });
    expect(await queue.cancel(running.id)).toBe(false);
  });
});
