import { InvalidArgumentError } from "@coordis/core";
import { coordisMetrics } from "@coordis/metrics";
import { Counter, Gauge, Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function thrown(call: () => unknown): InvalidArgumentError {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error("expected an InvalidArgumentError");
}

describe("coordisMetrics options", () => {
  it("a bucket without a string form is an InvalidArgumentError naming it, not a TypeError", () => {
    const odd: unknown[] = [
      Object.create(null),
      Symbol("b"),
      {
        toString() {
          throw new Error("no string");
        },
      },
    ];
    for (const bucket of odd) {
      const err = thrown(() => coordisMetrics({ registry: new Registry(), buckets: [0.1, bucket as number] }));
      expect(err.argument).toBe("options.buckets[1]");
      expect(
        thrown(() => coordisMetrics({ registry: new Registry(), queueBuckets: [bucket as number] })).argument,
      ).toBe("options.queueBuckets[0]");
    }
  });

  it("a call that fails on a clashing metric leaves the registry as it was, so the next call's options hold", async () => {
    const registry = new Registry();
    new Counter({ name: "mine_total", help: "mine", registers: [registry] });
    new Gauge({ name: "coordis_queue_depth", help: "mine", labelNames: ["queue"], registers: [registry] });
    const err = thrown(() => coordisMetrics({ registry, maxLabelValues: 5, buckets: [1, 2] }));
    expect(err.argument).toBe("options.registry");
    // Nothing of the failed call stays registered...
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(["mine_total", "coordis_queue_depth"]);
    // ...so once the clash is removed, as the error says, the next call's cap and buckets are its own.
    registry.removeSingleMetric("coordis_queue_depth");
    const metrics = coordisMetrics({ registry, maxLabelValues: 10, buckets: [0.5, 60] });
    for (let i = 0; i < 8; i++) {
      metrics.observer.onOperation?.({ primitive: `p${i}`, op: "x", outcome: "ok", durationMs: 30_000 });
    }
    const text = await registry.metrics();
    expect(text).toContain('coordis_operations_total{primitive="p7",op="x",outcome="ok"} 1');
    expect(text).toContain('coordis_operation_duration_seconds_bucket{le="60",primitive="p0",op="x"} 1');
  });
});
