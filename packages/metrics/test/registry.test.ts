import { InvalidArgumentError } from "@coordis/core";
import { coordisMetrics, DEFAULT_BUCKETS } from "@coordis/metrics";
import { Counter, Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function sample(text: string, metric: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${metric} `));
  return line === undefined ? undefined : Number(line.slice(metric.length + 1));
}

function thrown(call: () => unknown): InvalidArgumentError {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error("expected an InvalidArgumentError");
}

const counts = { waiting: 2, delayed: 1, active: 3, completed: 0, dead: 0, cancelled: 0, paused: false };
const op = (primitive: string, extra: Record<string, unknown> = {}) => ({
  primitive,
  op: "acquire",
  outcome: "acquired",
  durationMs: 2,
  ...extra,
});

describe("coordisMetrics and the registry it is given", () => {
  it("a metric of a Coordis name that is not Coordis' is an InvalidArgumentError naming it, not reports that vanish", () => {
    const registry = new Registry();
    new Counter({
      name: "coordis_operations_total",
      help: "mine",
      labelNames: ["primitive", "op"],
      registers: [registry],
    });
    const err = thrown(() => coordisMetrics({ registry }));
    expect(err.argument).toBe("options.registry");
    expect(err.message).toContain('"coordis_operations_total"');
    expect(err.message).toContain("removeSingleMetric");

    const other = new Registry();
    new Counter({ name: "coordis_queue_depth", help: "mine", labelNames: ["queue"], registers: [other] });
    expect(thrown(() => coordisMetrics({ registry: other })).message).toContain('"coordis_queue_depth" (counter');
    // Once the clashing metric is gone, the same call works and reports.
    other.removeSingleMetric("coordis_queue_depth");
    const metrics = coordisMetrics({ registry: other });
    metrics.trackQueue("emails", async () => counts);
    return other.metrics().then((text) => expect(sample(text, 'coordis_queue_depth{queue="emails"}')).toBe(6));
  });

  it("a gauge of a Coordis name made elsewhere is refused, since it would never report", () => {
    const registry = new Registry();
    new Gauge({
      name: "coordis_eventlog_group_lag",
      help: "mine",
      labelNames: ["log", "group"],
      registers: [registry],
    });
    expect(thrown(() => coordisMetrics({ registry })).message).toContain("did not create");
  });

  it("buckets: checked, copied (the caller's array stays usable), and one set per registry", async () => {
    for (const [buckets, argument] of [
      [[1, 0.1], "options.buckets[1]"],
      [[Number.NaN, 1], "options.buckets[0]"],
      [[], "options.buckets"],
      ["abc", "options.buckets"],
      [[0.1, 0.1], "options.buckets[1]"],
    ] as Array<[unknown, string]>) {
      expect(thrown(() => coordisMetrics({ registry: new Registry(), buckets: buckets as number[] })).argument).toBe(
        argument,
      );
    }
    expect(thrown(() => coordisMetrics({ registry: new Registry(), queueBuckets: [5, 1] })).argument).toBe(
      "options.queueBuckets[1]",
    );

    const registry = new Registry();
    const mine = [0.1, 1, 60];
    const metrics = coordisMetrics({ registry, buckets: mine });
    mine.push(120); // prom-client freezes the array it is given: not the caller's
    expect(mine).toHaveLength(4);
    // A later call on the registry without buckets shares the metrics as created; other buckets are refused.
    const again = coordisMetrics({ registry });
    const err = thrown(() => coordisMetrics({ registry, buckets: DEFAULT_BUCKETS }));
    expect(err.argument).toBe("options.buckets");
    expect(err.message).toContain("[0.1, 1, 60]");
    again.observer.onOperation?.(op("x", { durationMs: 30_000 }));
    metrics.observer.onOperation?.(op("x", { durationMs: 30 }));
    const text = await registry.metrics();
    expect(sample(text, 'coordis_operation_duration_seconds_bucket{le="60",primitive="x",op="acquire"}')).toBe(2);
    expect(sample(text, 'coordis_operation_duration_seconds_bucket{le="1",primitive="x",op="acquire"}')).toBe(1);
  });

  it("maxLabelValues is one cap per registry, shared by every coordisMetrics() on it", async () => {
    const registry = new Registry();
    const a = coordisMetrics({ registry, maxLabelValues: 3 });
    const b = coordisMetrics({ registry });
    for (let i = 0; i < 5; i++) a.observer.onOperation?.(op(`a${i}`));
    for (let i = 0; i < 5; i++) b.observer.onOperation?.(op(`b${i}`));
    const text = await registry.metrics();
    const primitives = new Set(
      text
        .split("\n")
        .filter((l) => l.startsWith("coordis_operations_total{"))
        .map((l) => /primitive="([^"]*)"/.exec(l)?.[1]),
    );
    expect([...primitives].sort()).toEqual(["a0", "a1", "a2", "other"]);
    expect(thrown(() => coordisMetrics({ registry, maxLabelValues: 50 })).argument).toBe("options.maxLabelValues");
    expect(coordisMetrics({ registry, maxLabelValues: 3 }).registry).toBe(registry);
  });

  it("a source answer with missing or non-numeric fields reports the rest and never fails the scrape", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    metrics.trackEventLogGroup("audit", "indexer", async () => ({ pending: 3 }) as never);
    metrics.trackQueue("emails", async () => ({ waiting: 1, delayed: "x", active: 2 }) as never);
    metrics.observer.onOperation?.(op("lock"));
    const text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_pending{log="audit",group="indexer"}')).toBe(3);
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="indexer"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_jobs{queue="emails",state="waiting"}')).toBe(1);
    expect(sample(text, 'coordis_queue_jobs{queue="emails",state="active"}')).toBe(2);
    expect(sample(text, 'coordis_queue_jobs{queue="emails",state="delayed"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_depth{queue="emails"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_lag{queue="emails"}')).toBe(1);
    expect(sample(text, 'coordis_operations_total{primitive="lock",op="acquire",outcome="acquired"}')).toBe(1);
  });

  it('trackQueue refuses "other", the label of untracked queues; without a source it registers the name only', async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    expect(thrown(() => metrics.trackQueue("other", async () => counts)).argument).toBe("queue");
    // A worker-only process: its deliveries count under the queue's name, and it reports no depth.
    const untrack = metrics.trackQueue("emails");
    metrics.observer.onOperation?.({
      primitive: "queue",
      op: "process",
      outcome: "completed",
      durationMs: 5,
      name: "emails",
    });
    metrics.observer.onOperation?.({
      primitive: "queue",
      op: "process",
      outcome: "completed",
      durationMs: 5,
      name: "tmp-1",
    });
    let text = await registry.metrics();
    expect(sample(text, 'coordis_queue_deliveries_total{queue="emails",outcome="completed"}')).toBe(1);
    expect(sample(text, 'coordis_queue_deliveries_total{queue="other",outcome="completed"}')).toBe(1);
    expect(text).not.toContain('coordis_queue_depth{queue="emails"}');
    untrack();
    metrics.observer.onOperation?.({
      primitive: "queue",
      op: "process",
      outcome: "completed",
      durationMs: 5,
      name: "emails",
    });
    text = await registry.metrics();
    expect(sample(text, 'coordis_queue_deliveries_total{queue="other",outcome="completed"}')).toBe(2);
  });

  it("a registry merged from the one holding the metrics shares their tracked queues and groups", async () => {
    const base = new Registry();
    coordisMetrics({ registry: base });
    const merged = Registry.merge([base, new Registry()]);
    const metrics = coordisMetrics({ registry: merged });
    metrics.trackQueue("billing", async () => counts);
    metrics.trackEventLogGroup("audit", "indexer", async () => ({ pending: 1, lag: 4 }));
    const text = await merged.metrics();
    expect(sample(text, 'coordis_queue_depth{queue="billing"}')).toBe(6);
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="indexer"}')).toBe(4);
  });

  it("a registry that is not a prom-client Registry is an InvalidArgumentError", () => {
    for (const registry of [null, {}, "r"]) {
      expect(thrown(() => coordisMetrics({ registry: registry as never })).argument).toBe("options.registry");
    }
  });
});
