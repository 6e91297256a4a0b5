import { coordisMetrics } from "@coordis/metrics";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function sample(text: string, metric: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${metric} `));
  return line === undefined ? undefined : Number(line.slice(metric.length + 1));
}

const counts = { waiting: 2, delayed: 1, active: 4, completed: 7, dead: 0, cancelled: 0, paused: false };

describe("a source's odd answer never fails the scrape", () => {
  it("a queue answer with a bigint, a Symbol or a throwing getter: those fields are left out, the rest reported", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    metrics.trackQueue("big", async () => ({ ...counts, waiting: 2n }) as never);
    metrics.trackQueue("sym", async () => ({ ...counts, delayed: Symbol("d") }) as never);
    metrics.trackQueue(
      "getter",
      async () =>
        ({
          ...counts,
          get active(): number {
            throw new Error("no active count");
          },
        }) as never,
    );
    metrics.trackQueue("fine", async () => counts);
    const text = await registry.metrics();
    // The fields that are finite numbers are reported...
    expect(sample(text, 'coordis_queue_jobs{queue="big",state="completed"}')).toBe(7);
    expect(sample(text, 'coordis_queue_jobs{queue="sym",state="waiting"}')).toBe(2);
    expect(sample(text, 'coordis_queue_jobs{queue="getter",state="delayed"}')).toBe(1);
    expect(sample(text, 'coordis_queue_paused{queue="getter"}')).toBe(0);
    // ...the odd ones, and the depth they would make up, are left out...
    expect(sample(text, 'coordis_queue_jobs{queue="big",state="waiting"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_depth{queue="big"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_lag{queue="big"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_depth{queue="sym"}')).toBeUndefined();
    expect(sample(text, 'coordis_queue_jobs{queue="getter",state="active"}')).toBeUndefined();
    // ...and every other queue is untouched.
    expect(sample(text, 'coordis_queue_depth{queue="fine"}')).toBe(7);
  });

  it("a consumer group's answer with a throwing getter or a bigint: the other field is reported", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    metrics.trackEventLogGroup(
      "audit",
      "getter",
      async () =>
        ({
          get pending(): number {
            throw new Error("no pending count");
          },
          lag: 3,
        }) as never,
    );
    metrics.trackEventLogGroup("audit", "big", async () => ({ pending: 5, lag: 9n }) as never);
    const text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="getter"}')).toBe(3);
    expect(sample(text, 'coordis_eventlog_group_pending{log="audit",group="getter"}')).toBeUndefined();
    expect(sample(text, 'coordis_eventlog_group_pending{log="audit",group="big"}')).toBe(5);
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="big"}')).toBeUndefined();
  });

  it("an answer that is not an object keeps the last figures, as null does", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    let answer: unknown = counts;
    metrics.trackQueue("q", async () => answer as never);
    expect(sample(await registry.metrics(), 'coordis_queue_depth{queue="q"}')).toBe(7);
    answer = 42;
    expect(sample(await registry.metrics(), 'coordis_queue_depth{queue="q"}')).toBe(7);
  });
});
