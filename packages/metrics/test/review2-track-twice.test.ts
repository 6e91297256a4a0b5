import { coordisMetrics } from "@coordis/metrics";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const counts = { waiting: 2, delayed: 1, active: 4, completed: 7, dead: 0, cancelled: 0, paused: false };
const delivered = (name: string) => ({
  primitive: "queue",
  op: "process",
  outcome: "completed",
  durationMs: 5,
  name,
});

describe("the same source tracked twice", () => {
  it("a queue's name registered twice without a source: the first untrack leaves the second registration", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    // Two parts of one process run workers of "emails" and each registers the name; the first one stops.
    const untrackFirst = metrics.trackQueue("emails");
    const untrackSecond = metrics.trackQueue("emails");
    untrackFirst();
    metrics.observer.onOperation?.(delivered("emails"));
    let text = await registry.metrics();
    expect(sample(text, 'coordis_queue_deliveries_total{queue="emails",outcome="completed"}')).toBe(1);
    expect(sample(text, 'coordis_queue_deliveries_total{queue="other",outcome="completed"}')).toBeUndefined();
    untrackSecond();
    metrics.observer.onOperation?.(delivered("emails"));
    text = await registry.metrics();
    expect(sample(text, 'coordis_queue_deliveries_total{queue="other",outcome="completed"}')).toBe(1);
  });

  it("one source function tracked twice (log and group, queue): the earlier untrack no longer removes it", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    const groupSource = async () => ({ pending: 1, lag: 4 });
    const queueSource = async () => counts;
    const untrackGroup = metrics.trackEventLogGroup("audit", "indexer", groupSource);
    metrics.trackEventLogGroup("audit", "indexer", groupSource);
    const untrackQueue = metrics.trackQueue("billing", queueSource);
    metrics.trackQueue("billing", queueSource);
    untrackGroup();
    untrackQueue();
    const text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_lag{log="audit",group="indexer"}')).toBe(4);
    expect(sample(text, 'coordis_queue_depth{queue="billing"}')).toBe(7);
  });

  it("an answer read for an untracked registration is not taken as the figures of the same source tracked again", async () => {
    const registry = new Registry();
    const metrics = coordisMetrics({ registry });
    let release: ((answer: typeof counts) => void) | undefined;
    let reads = 0;
    const source = () => {
      reads++;
      // The first read answers late, with figures that no longer hold when it comes.
      return reads === 1
        ? new Promise<typeof counts>((resolve) => {
            release = resolve;
          })
        : Promise.resolve({ ...counts, waiting: 100 });
    };
    const untrack = metrics.trackQueue("q", source);
    const scrape = registry.metrics();
    await expect.poll(() => release !== undefined).toBe(true);
    untrack();
    metrics.trackQueue("q", source);
    release?.({ ...counts, waiting: 1 });
    // The registration that replaced the first one has not been read yet: no figures, not the first one's.
    expect(sample(await scrape, 'coordis_queue_lag{queue="q"}')).toBeUndefined();
    expect(sample(await registry.metrics(), 'coordis_queue_lag{queue="q"}')).toBe(100);
  });
});
