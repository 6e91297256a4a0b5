import { coordisMetrics, LabelGuard } from "@coordis/metrics";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function sample(text: string, metric: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(metric));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("coordisMetrics", () => {
  it("turns lock, rate-limit, cache and event-log reports into Prometheus metrics with bounded labels", async () => {
    const registry = new Registry();
    const { observer } = coordisMetrics({ registry });
    observer.onOperation?.({
      primitive: "lock",
      op: "acquire",
      outcome: "acquired",
      durationMs: 3,
      name: "report-job-user-42",
      attributes: { kind: "mutex", attempts: 1 },
    });
    observer.onOperation?.({
      primitive: "lock",
      op: "extend",
      outcome: "ok",
      durationMs: 1,
      attributes: { kind: "mutex" },
    });
    observer.onEvent?.({ primitive: "lock", type: "lease-lost", name: "x", attributes: { kind: "redlock" } });
    for (const outcome of ["allowed", "allowed", "rejected"]) {
      observer.onOperation?.({
        primitive: "ratelimit",
        op: "consume",
        outcome,
        durationMs: 0.4,
        name: "api-key-123",
        attributes: { rule: "burst", reason: "redis", algorithm: "gcra" },
      });
    }
    observer.onOperation?.({
      primitive: "cache",
      op: "get",
      outcome: "hit",
      durationMs: 0.01,
      attributes: { tier: "l1", result: "hit" },
    });
    observer.onOperation?.({
      primitive: "eventlog",
      op: "append",
      outcome: "duplicate",
      durationMs: 0.5,
      name: "audit",
    });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_lock_acquisitions_total{kind="mutex",outcome="acquired"}')).toBe(1);
    expect(sample(text, 'coordis_lock_acquire_duration_seconds_count{kind="mutex",outcome="acquired"}')).toBe(1);
    expect(sample(text, 'coordis_lock_acquire_duration_seconds_sum{kind="mutex",outcome="acquired"}')).toBeCloseTo(
      0.003,
    );
    expect(sample(text, 'coordis_lock_extensions_total{kind="mutex",outcome="ok"}')).toBe(1);
    expect(sample(text, 'coordis_lock_leases_lost_total{kind="redlock"}')).toBe(1);
    expect(sample(text, 'coordis_ratelimit_decisions_total{rule="burst",outcome="allowed",reason="redis"}')).toBe(2);
    expect(sample(text, 'coordis_ratelimit_decisions_total{rule="burst",outcome="rejected",reason="redis"}')).toBe(1);
    expect(sample(text, 'coordis_cache_requests_total{tier="l1",result="hit"}')).toBe(1);
    expect(sample(text, 'coordis_eventlog_appends_total{outcome="duplicate"}')).toBe(1);
    expect(sample(text, 'coordis_operations_total{primitive="ratelimit",op="consume",outcome="rejected"}')).toBe(1);
    expect(sample(text, 'coordis_events_total{primitive="lock",type="lease-lost"}')).toBe(1);
    // Entity names (lock names, rate-limit keys) never become labels.
    expect(text).not.toContain("report-job-user-42");
    expect(text).not.toContain("api-key-123");
    expect(text).toMatch(/# TYPE coordis_lock_acquire_duration_seconds histogram/);
  });

  it("reports consumer-group lag and pending read at scrape time, and stops when untracked", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    let lag = 7;
    const untrack = metrics.trackEventLogGroup("audit", "indexer", async () => ({ pending: 3, lag }));
    let text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="indexer"}')).toBe(7);
    expect(sample(text, 'coordis_eventlog_group_pending{log="audit",group="indexer"}')).toBe(3);
    lag = 0;
    text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="indexer"}')).toBe(0);
    untrack();
    text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="indexer"}')).toBeUndefined();
  });

  it("is idempotent per registry and works with the default one", async () => {
    const registry = new Registry();
    const a = coordisMetrics({ registry });
    const b = coordisMetrics({ registry });
    a.observer.onOperation?.({ primitive: "x", op: "y", outcome: "ok", durationMs: 1 });
    b.observer.onOperation?.({ primitive: "x", op: "y", outcome: "ok", durationMs: 1 });
    expect(sample(await registry.metrics(), 'coordis_operations_total{primitive="x",op="y",outcome="ok"}')).toBe(2);
    const global = coordisMetrics();
    expect(global.registry.getSingleMetric("coordis_operations_total")).toBeDefined();
  });

  it("caps label cardinality", () => {
    const guard = new LabelGuard(2);
    expect(guard.value("rule", "a")).toBe("a");
    expect(guard.value("rule", "b")).toBe("b");
    expect(guard.value("rule", "c")).toBe("other");
    expect(guard.value("rule", "a")).toBe("a");
    expect(guard.value("rule", undefined)).toBe("other");
    expect(guard.value("tier", undefined)).toBe("none");
  });
});
