import type { CoordisEvent, OperationEvent } from "@coordis/core";
import { coordisMetrics } from "@coordis/metrics";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

type Metrics = ReturnType<typeof coordisMetrics>;

/** Calls the observer directly, as a user's own report would, failing the test when it throws (it never may). */
function report(metrics: Metrics, event: unknown): void {
  expect(() => metrics.observer.onOperation?.(event as OperationEvent)).not.toThrow();
}
function notify(metrics: Metrics, event: unknown): void {
  expect(() => metrics.observer.onEvent?.(event as CoordisEvent)).not.toThrow();
}

const throwing = (): never => {
  throw new Error("getter says no");
};

describe("reports whose fields cannot be read", () => {
  it("a getter that throws on a report's field never makes the observer throw; the field is a label 'invalid'", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    report(metrics, {
      op: "acquire",
      outcome: "acquired",
      durationMs: 2,
      get primitive() {
        return throwing();
      },
    });
    report(metrics, {
      primitive: "lock",
      op: "acquire",
      outcome: "acquired",
      get durationMs() {
        return throwing();
      },
    });
    report(metrics, {
      primitive: "lock",
      op: "acquire",
      outcome: "busy",
      durationMs: 3,
      get attributes() {
        return throwing();
      },
    });
    report(metrics, {
      primitive: "ratelimit",
      op: "consume",
      outcome: "allowed",
      durationMs: 1,
      attributes: {
        rule: "burst",
        get reason() {
          return throwing();
        },
      },
    });
    notify(metrics, {
      primitive: "lock",
      get type() {
        return throwing();
      },
    });
    notify(metrics, {
      primitive: "lock",
      type: "lease-lost",
      attributes: {
        get kind() {
          return throwing();
        },
      },
    });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_operations_total{primitive="invalid",op="acquire",outcome="acquired"}')).toBe(1);
    // The report with an unreadable duration is counted everywhere it belongs, and left out of the histograms.
    expect(sample(text, 'coordis_operations_total{primitive="lock",op="acquire",outcome="acquired"}')).toBe(1);
    expect(sample(text, 'coordis_lock_acquisitions_total{kind="mutex",outcome="acquired"}')).toBe(1);
    expect(sample(text, 'coordis_lock_acquire_duration_seconds_count{kind="mutex",outcome="acquired"}')).toBe(
      undefined,
    );
    // Attributes that cannot be read are as missing ones: the lock's kind defaults to mutex.
    expect(sample(text, 'coordis_lock_acquisitions_total{kind="mutex",outcome="busy"}')).toBe(1);
    expect(sample(text, 'coordis_ratelimit_decisions_total{rule="burst",outcome="allowed",reason="invalid"}')).toBe(1);
    expect(sample(text, 'coordis_events_total{primitive="lock",type="invalid"}')).toBe(1);
    expect(sample(text, 'coordis_lock_leases_lost_total{kind="invalid"}')).toBe(1);
  });

  it("a Proxy report whose every read throws is counted as invalid, never thrown", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const hostile = new Proxy(
      {},
      {
        get: throwing,
        has: throwing,
        getOwnPropertyDescriptor: throwing,
      },
    );
    report(metrics, hostile);
    notify(metrics, hostile);
    report(metrics, { primitive: "ratelimit", op: "consume", outcome: "allowed", durationMs: 1, attributes: hostile });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_operations_total{primitive="invalid",op="invalid",outcome="invalid"}')).toBe(1);
    expect(sample(text, 'coordis_events_total{primitive="invalid",type="invalid"}')).toBe(1);
    // Attributes whose values cannot be read: each value is "invalid".
    expect(sample(text, 'coordis_ratelimit_decisions_total{rule="invalid",outcome="allowed",reason="invalid"}')).toBe(
      1,
    );
  });

  it("a queue report whose job count or name cannot be read is counted, not thrown", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    metrics.trackQueue("emails");
    report(metrics, {
      primitive: "queue",
      op: "add",
      outcome: "added",
      durationMs: 1,
      name: "emails",
      attributes: {
        get jobs() {
          return throwing();
        },
        duplicates: 0,
      },
    });
    report(metrics, {
      primitive: "queue",
      op: "process",
      outcome: "completed",
      durationMs: 1,
      get name() {
        return throwing();
      },
    });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_queue_jobs_added_total{queue="emails",outcome="added"}')).toBe(1);
    expect(sample(text, 'coordis_queue_deliveries_total{queue="other",outcome="completed"}')).toBe(1);
  });

  it("a getter that answers differently at each read is read once: the report is counted as one thing", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    let reads = 0;
    report(metrics, {
      get primitive() {
        return reads++ === 0 ? "cache" : "lock";
      },
      op: "acquire",
      outcome: "acquired",
      durationMs: 1,
    });
    const text = await registry.metrics();
    expect(sample(text, 'coordis_operations_total{primitive="cache",op="acquire",outcome="acquired"}')).toBe(1);
    // Not also counted as a lock acquisition by a second read of `primitive`.
    expect(text).not.toMatch(/^coordis_lock_acquisitions_total\{/m);
  });
});

describe("label values that are not valid Unicode", () => {
  it("a lone surrogate is replaced, so the scrape stays valid Unicode and two such values are one series", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    for (const rule of ["burst\uD800", "burst\uDBFF", "burst\uDC00"]) {
      report(metrics, {
        primitive: "ratelimit",
        op: "consume",
        outcome: "allowed",
        durationMs: 1,
        attributes: { rule, reason: "redis" },
      });
    }
    const text = await registry.metrics();
    expect(text.isWellFormed()).toBe(true);
    // What an HTTP response would carry: the lines as UTF-8, each series once.
    const lines = new TextDecoder()
      .decode(new TextEncoder().encode(text))
      .split("\n")
      .filter((l) => l.startsWith("coordis_ratelimit_decisions_total{"));
    expect(lines).toEqual(['coordis_ratelimit_decisions_total{rule="burst\uFFFD",outcome="allowed",reason="redis"} 3']);
  });
});
