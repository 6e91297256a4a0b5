import { setTimeout as sleep } from "node:timers/promises";
import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { coordisMetrics } from "@coordis/metrics";
import { Queue, Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("metrics-queue");

/** The value of the sample `series` (name and labels exactly as exposed), or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Queue work reaches the metrics within seconds; 15 s leaves room for a loaded machine. */
const METRICS_WAIT = { timeoutMs: 15_000, intervalMs: 20 };

describe("queue metrics from a real Queue and Worker", () => {
  let redis: RedisClient;
  const workers: Worker<never, never>[] = [];
  const queues: Queue<never, never>[] = [];
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close({ timeoutMs: 2_000 })));
    for (const queue of queues.splice(0)) await queue.close();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("counts adds, deliveries by outcome and handler time, and reads depth and lag at scrape time", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const name = `jobs-${Date.now()}`;
    const queue = new Queue<string, string>(redis, name, { prefix, observer: metrics.observer });
    queues.push(queue as never);
    const untrack = metrics.trackQueue(queue.name, () => queue.counts());

    // 6 jobs added, 2 duplicates: 4 single adds (one a duplicate), then addMany of 3 (one a duplicate).
    await queue.add("ok");
    await queue.add("ok");
    await queue.add("fail", { id: "f", attempts: 2, backoff: { type: "fixed", delayMs: 20 } });
    expect((await queue.add("ok", { id: "f" })).duplicate).toBe(true);
    const many = await queue.addMany([{ data: "ok" }, { data: "slow" }, { data: "ok", opts: { id: "f" } }]);
    expect(many.map((r) => r.duplicate)).toEqual([false, false, true]);
    let text = await registry.metrics();
    const q = `queue="${name}"`;
    expect(sample(text, `coordis_queue_jobs_added_total{${q},outcome="added"}`)).toBe(6 - 1);
    expect(sample(text, `coordis_queue_jobs_added_total{${q},outcome="duplicate"}`)).toBe(2);
    // Nothing ran yet: 5 jobs waiting, none delivered.
    expect(sample(text, `coordis_queue_jobs{${q},state="waiting"}`)).toBe(5);
    expect(sample(text, `coordis_queue_depth{${q}}`)).toBe(5);
    expect(sample(text, `coordis_queue_lag{${q}}`)).toBe(5);
    expect(sample(text, `coordis_queue_paused{${q}}`)).toBe(0);

    const worker = new Worker<string, string>(
      redis,
      name,
      async (job) => {
        if (job.data === "fail") throw new Error("boom");
        if (job.data === "slow") await sleep(120);
        return job.data;
      },
      { prefix, observer: metrics.observer, concurrency: 4 },
    );
    workers.push(worker as never);
    // 4 completions; "f" fails twice: one retry, then dead.
    const processed = async () => {
      text = await registry.metrics();
      return (
        sample(text, `coordis_queue_deliveries_total{${q},outcome="completed"}`) === 4 &&
        sample(text, `coordis_queue_deliveries_total{${q},outcome="dead"}`) === 1
      );
    };
    await waitUntil("4 completed and 1 dead delivery in the metrics", processed, METRICS_WAIT);
    expect(sample(text, `coordis_queue_deliveries_total{${q},outcome="retry"}`)).toBe(1);
    expect(sample(text, `coordis_queue_processing_duration_seconds_count{${q},outcome="completed"}`)).toBe(4);
    expect(sample(text, `coordis_queue_processing_duration_seconds_count{${q},outcome="retry"}`)).toBe(1);
    // The slow handler's 120 ms are in the completed histogram: at most 3 completions took under 0.1 s.
    expect(
      sample(text, `coordis_queue_processing_duration_seconds_bucket{le="0.1",${q},outcome="completed"}`),
    ).toBeLessThanOrEqual(3);
    expect(sample(text, `coordis_queue_processing_duration_seconds_sum{${q},outcome="completed"}`)).toBeGreaterThan(
      0.1,
    );
    expect(sample(text, `coordis_events_total{primitive="queue",type="job-dead"}`)).toBe(1);
    expect(sample(text, `coordis_operations_total{primitive="queue",op="process",outcome="completed"}`)).toBe(4);
    // The gauges are read from counts() at scrape time.
    expect(sample(text, `coordis_queue_jobs{${q},state="completed"}`)).toBe(4);
    expect(sample(text, `coordis_queue_jobs{${q},state="dead"}`)).toBe(1);
    expect(sample(text, `coordis_queue_depth{${q}}`)).toBe(0);
    expect(sample(text, `coordis_queue_lag{${q}}`)).toBe(0);

    // Paused: a new job waits, and the next scrape shows it.
    await queue.pause();
    await queue.add("ok");
    text = await registry.metrics();
    expect(sample(text, `coordis_queue_paused{${q}}`)).toBe(1);
    expect(sample(text, `coordis_queue_lag{${q}}`)).toBe(1);
    expect(sample(text, `coordis_queue_depth{${q}}`)).toBe(1);

    // Untracked: the gauges are gone, later reports count under queue="other".
    untrack();
    await queue.add("ok");
    text = await registry.metrics();
    expect(text).not.toMatch(/^coordis_queue_depth\{/m);
    expect(sample(text, `coordis_queue_jobs_added_total{queue="other",outcome="added"}`)).toBe(1);
    await queue.resume();
  });

  it('a queue that is not registered never becomes a label: its reports count under queue="other"', async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const name = `unregistered-${Date.now()}`;
    const queue = new Queue<number, number>(redis, name, { prefix, observer: metrics.observer });
    queues.push(queue as never);
    const worker = new Worker<number, number>(redis, name, async (job) => job.data + 1, {
      prefix,
      observer: metrics.observer,
    });
    workers.push(worker as never);
    const { id } = await queue.add(1);
    expect(await queue.result(id, { timeoutMs: 10_000 })).toBe(2);
    let text = "";
    await waitUntil(
      "the delivery in the metrics",
      async () => {
        text = await registry.metrics();
        return sample(text, 'coordis_queue_deliveries_total{queue="other",outcome="completed"}') === 1;
      },
      METRICS_WAIT,
    );
    expect(sample(text, 'coordis_queue_jobs_added_total{queue="other",outcome="added"}')).toBe(1);
    expect(text).not.toContain(name);
    expect(text).not.toMatch(/^coordis_queue_(depth|lag|paused|jobs)\{/m);
  });

  it("two coordisMetrics() on one registry share the registered queues; one scrape reads each source once", async () => {
    const registry = new Registry();
    coordisMetrics({ registry });
    const second = coordisMetrics({ registry });
    let reads = 0;
    second.trackQueue("shared", async () => {
      reads++;
      return { waiting: 2, delayed: 3, active: 1, completed: 0, dead: 0, cancelled: 0, paused: false };
    });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_queue_depth{queue="shared"}')).toBe(6);
    expect(sample(text, 'coordis_queue_lag{queue="shared"}')).toBe(2);
    expect(sample(text, 'coordis_queue_jobs{queue="shared",state="delayed"}')).toBe(3);
    expect(reads).toBe(1);
    await registry.metrics();
    expect(reads).toBe(2);
  });
});

describe("coordisMetrics options and arguments", () => {
  it.each([
    ["registy", { registy: new Registry() }, "options.registy"],
    ["bucket", { bucket: [0.1, 1] }, "options.bucket"],
    ["maxLabels", { maxLabels: 10 }, "options.maxLabels"],
  ])("an unknown option key (%s) is an InvalidArgumentError naming %s", (_key, options, argument) => {
    let caught: unknown;
    try {
      coordisMetrics({ registry: new Registry(), ...(options as object) });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).argument).toBe(argument);
  });

  it("trackQueue checks its arguments", () => {
    const metrics = coordisMetrics({ registry: new Registry() });
    expect(() => metrics.trackQueue("", async () => null)).toThrow(InvalidArgumentError);
    expect(() => metrics.trackQueue("q", null as never)).toThrow(InvalidArgumentError);
  });
});
