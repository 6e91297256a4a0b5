import type { OperationEvent } from "@coordis/core";
import { coordisMetrics } from "@coordis/metrics";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Calls the observer as a report's sender would, failing the test when it throws (the observer never may). */
function report(observer: ReturnType<typeof coordisMetrics>["observer"], event: unknown): void {
  expect(() => observer.onOperation?.(event as OperationEvent)).not.toThrow();
}

describe("the observer with reports it does not expect", () => {
  it("a report without a finite duration is counted everywhere it belongs, and left out of the histograms", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    metrics.trackQueue("emails");
    for (const durationMs of [Number.NaN, Number.POSITIVE_INFINITY, undefined, "5"]) {
      const timing = durationMs === undefined ? {} : { durationMs };
      report(metrics.observer, {
        primitive: "lock",
        op: "acquire",
        outcome: "acquired",
        ...timing,
        attributes: { kind: "semaphore" },
      });
      report(metrics.observer, { primitive: "queue", op: "process", outcome: "completed", name: "emails", ...timing });
      report(metrics.observer, {
        primitive: "ratelimit",
        op: "consume",
        outcome: "allowed",
        ...timing,
        attributes: { rule: "burst", reason: "redis" },
      });
    }
    report(metrics.observer, { primitive: "lock", op: "acquire", outcome: "acquired", durationMs: 4 });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_lock_acquisitions_total{kind="semaphore",outcome="acquired"}')).toBe(4);
    expect(sample(text, 'coordis_queue_deliveries_total{queue="emails",outcome="completed"}')).toBe(4);
    expect(sample(text, 'coordis_ratelimit_decisions_total{rule="burst",outcome="allowed",reason="redis"}')).toBe(4);
    expect(sample(text, 'coordis_operations_total{primitive="lock",op="acquire",outcome="acquired"}')).toBe(5);
    // Only the timed report is in the histograms, and their sums stay numbers.
    expect(sample(text, 'coordis_operation_duration_seconds_count{primitive="lock",op="acquire"}')).toBe(1);
    expect(sample(text, 'coordis_operation_duration_seconds_sum{primitive="lock",op="acquire"}')).toBe(0.004);
    expect(sample(text, 'coordis_lock_acquire_duration_seconds_count{kind="semaphore",outcome="acquired"}')).toBe(
      undefined,
    );
    expect(text).not.toMatch(/^coordis_queue_processing_duration_seconds_count\{/m);
    expect(text).not.toMatch(/ (NaN|\+Inf)$/m);
  });

  it("attribute values without a string form, reports that are not objects and odd attributes never throw", async () => {
    const registry = new Registry();
    const { observer } = coordisMetrics({ registry });
    report(observer, {
      primitive: "ratelimit",
      op: "consume",
      outcome: "rejected",
      durationMs: 1,
      attributes: { rule: Object.create(null), reason: Symbol("why") },
    });
    report(observer, { primitive: "lock", op: "extend", outcome: "ok", durationMs: 1, attributes: "mutex" });
    report(observer, null);
    report(observer, "lock");
    expect(() => observer.onEvent?.(null as never)).not.toThrow();
    expect(() =>
      observer.onEvent?.({ primitive: "lock", type: "lease-lost", attributes: { kind: Object.create(null) } }),
    ).not.toThrow();
    const text = await registry.metrics();
    expect(sample(text, 'coordis_ratelimit_decisions_total{rule="invalid",outcome="rejected",reason="invalid"}')).toBe(
      1,
    );
    expect(sample(text, 'coordis_lock_extensions_total{kind="mutex",outcome="ok"}')).toBe(1);
    expect(sample(text, 'coordis_lock_leases_lost_total{kind="invalid"}')).toBe(1);
  });

  it("a label value cut at 64 characters never keeps half of a character", async () => {
    const registry = new Registry();
    const { observer } = coordisMetrics({ registry });
    const rule = `${"r".repeat(63)}\u{1F600}tail`; // the emoji's two UTF-16 units straddle the cut
    report(observer, {
      primitive: "ratelimit",
      op: "consume",
      outcome: "allowed",
      durationMs: 1,
      attributes: { rule, reason: "redis" },
    });
    const text = await registry.metrics();
    expect(text.isWellFormed()).toBe(true);
    expect(
      sample(text, `coordis_ratelimit_decisions_total{rule="${"r".repeat(63)}",outcome="allowed",reason="redis"}`),
    ).toBe(1);
  });

  it("names, job ids and other unbounded facts of a report never become labels", async () => {
    const registry = new Registry();
    const { observer } = coordisMetrics({ registry });
    observer.onEvent?.({
      primitive: "queue",
      type: "job-dead",
      name: "emails-tenant-8812",
      attributes: { attempt: 3, jobId: "job-7f3a9c" },
    });
    report(observer, {
      primitive: "cache",
      op: "get",
      outcome: "hit",
      durationMs: 1,
      name: "user:42:profile",
      attributes: { namespace: "users-ns-77", tier: "l1", result: "hit" },
    });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_events_total{primitive="queue",type="job-dead"}')).toBe(1);
    expect(sample(text, 'coordis_cache_requests_total{tier="l1",result="hit"}')).toBe(1);
    for (const value of ["emails-tenant-8812", "job-7f3a9c", "user:42:profile", "users-ns-77"]) {
      expect(text).not.toContain(value);
    }
  });
});
