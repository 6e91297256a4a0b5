import { InvalidArgumentError } from "@coordis/core";
import { coordisMetrics, type GroupInfo, SOURCE_TIMEOUT_MS } from "@coordis/metrics";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it, vi } from "vitest";

function sample(text: string, metric: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${metric} `));
  return line === undefined ? undefined : Number(line.slice(metric.length + 1));
}

const LAG = 'coordis_eventlog_group_lag{log="audit",group="indexer"}';
const PENDING = 'coordis_eventlog_group_pending{log="audit",group="indexer"}';
const counts = { waiting: 2, delayed: 0, active: 0, completed: 0, dead: 0, cancelled: 0, paused: false };

describe("sources read at scrape time", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a group tracked through a second coordisMetrics() on the same registry is reported", async () => {
    const registry = new Registry();
    coordisMetrics({ registry });
    const second = coordisMetrics({ registry });
    second.trackEventLogGroup("audit", "indexer", async () => ({ pending: 1, lag: 3 }));
    const text = await registry.metrics();
    expect(sample(text, LAG)).toBe(3);
    expect(sample(text, PENDING)).toBe(1);
  });

  it("a group's source is read once per scrape, so lag and pending come from the same read", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    let reads = 0;
    metrics.trackEventLogGroup("audit", "indexer", async () => {
      reads++;
      return { pending: reads, lag: reads };
    });
    const text = await registry.metrics();
    expect(reads).toBe(1);
    expect(sample(text, LAG)).toBe(sample(text, PENDING));
  });

  it("a source that throws synchronously keeps the last figures and the rest of the scrape works", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    metrics.observer.onOperation?.({ primitive: "lock", op: "acquire", outcome: "acquired", durationMs: 1 });
    let fail = false;
    metrics.trackEventLogGroup("audit", "indexer", (() => {
      if (fail) throw new Error("boom");
      return Promise.resolve({ pending: 0, lag: 5 });
    }) as () => Promise<GroupInfo>);
    metrics.trackQueue("q", (() => {
      if (fail) throw new Error("boom");
      return Promise.resolve(counts);
    }) as never);
    expect(sample(await registry.metrics(), LAG)).toBe(5);
    fail = true;
    const text = await registry.metrics();
    expect(sample(text, LAG)).toBe(5);
    expect(sample(text, 'coordis_queue_lag{queue="q"}')).toBe(2);
    expect(sample(text, 'coordis_operations_total{primitive="lock",op="acquire",outcome="acquired"}')).toBe(1);
  });

  it("untracking an older registration of a log and group keeps the one that replaced it", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const untrackOld = metrics.trackEventLogGroup("audit", "indexer", async () => ({ pending: 1, lag: 1 }));
    const untrackNew = metrics.trackEventLogGroup("audit", "indexer", async () => ({ pending: 5, lag: 5 }));
    untrackOld();
    expect(sample(await registry.metrics(), LAG)).toBe(5);
    untrackNew();
    expect(sample(await registry.metrics(), LAG)).toBeUndefined();
  });

  it(`a source that never answers holds a scrape up ${SOURCE_TIMEOUT_MS} ms at most, even after it is untracked`, async () => {
    vi.useFakeTimers();
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    let hang = false;
    const untrack = metrics.trackQueue("q", () => (hang ? new Promise(() => {}) : Promise.resolve(counts)));
    metrics.trackEventLogGroup("audit", "indexer", () =>
      hang ? new Promise(() => {}) : Promise.resolve({ pending: 0, lag: 4 }),
    );
    expect(sample(await registry.metrics(), 'coordis_queue_lag{queue="q"}')).toBe(2);
    hang = true;
    let done = false;
    const scrape = registry.metrics().then((text) => {
      done = true;
      return text;
    });
    await vi.advanceTimersByTimeAsync(SOURCE_TIMEOUT_MS - 1);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const text = await scrape;
    expect(sample(text, 'coordis_queue_lag{queue="q"}')).toBe(2); // the last figures
    expect(sample(text, LAG)).toBe(4);
    untrack();
    hang = false;
    const next = await registry.metrics(); // not held up by the read that never answered
    expect(sample(next, 'coordis_queue_lag{queue="q"}')).toBeUndefined();
    expect(sample(next, LAG)).toBe(4);
  });

  it("trackEventLogGroup and maxLabelValues check their arguments", () => {
    const metrics = coordisMetrics({ registry: new Registry() });
    const source = async () => null;
    const cases: Array<[string, () => unknown]> = [
      ["log", () => metrics.trackEventLogGroup("", "g", source)],
      ["group", () => metrics.trackEventLogGroup("l", "a\u0000b", source)],
      ["source", () => metrics.trackEventLogGroup("l", "g", undefined as never)],
      ["options.maxLabelValues", () => coordisMetrics({ registry: new Registry(), maxLabelValues: Number.NaN })],
      ["options.maxLabelValues", () => coordisMetrics({ registry: new Registry(), maxLabelValues: 0 })],
      ["options.maxLabelValues", () => coordisMetrics({ registry: new Registry(), maxLabelValues: 1.5 })],
      [
        "options.maxLabelValues",
        () => coordisMetrics({ registry: new Registry(), maxLabelValues: Number.POSITIVE_INFINITY }),
      ],
    ];
    for (const [argument, call] of cases) {
      let caught: unknown;
      try {
        call();
      } catch (err) {
        caught = err;
      }
      expect(caught, argument).toBeInstanceOf(InvalidArgumentError);
      expect((caught as InvalidArgumentError).argument).toBe(argument);
    }
  });
});
