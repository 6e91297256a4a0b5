import type { Counter, Gauge, Histogram } from "prom-client";
import type { QueueCountsSource } from "./queue-counts.js";
import { type MetricFactory, type QueueFigures, reportable } from "./registry-state.js";
import type { ReportFields } from "./report-fields.js";
import type { ScrapeSources } from "./scrape-sources.js";

export type { QueueCountsInfo, QueueCountsSource } from "./queue-counts.js";

/** The label value of the reports of a queue that was not registered with `trackQueue`. */
export const UNTRACKED_QUEUE = "other";

/** Default histogram buckets of job handler times, seconds: 5 ms … 15 min. */
export const DEFAULT_QUEUE_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
]);

const STATES = ["waiting", "delayed", "active", "completed", "dead", "cancelled"] as const;

/** The `coordis_queue_*` series of one registry and the observer part that feeds them. */
export class QueueMetrics {
  readonly #tracked: ScrapeSources<QueueFigures>;
  readonly #added: Counter<"queue" | "outcome">;
  readonly #deliveries: Counter<"queue" | "outcome">;
  readonly #processing: Histogram<"queue" | "outcome">;

  /** `buckets` undefined: those of the registry's existing histogram, or the default ones. */
  constructor(factory: MetricFactory, tracked: ScrapeSources<QueueFigures>, buckets: readonly number[] | undefined) {
    // Shared by every coordisMetrics() on this registry: the gauges below are registered once per registry.
    this.#tracked = tracked;
    const labelNames = ["queue", "outcome"] as const;
    this.#added = factory.counter(
      "coordis_queue_jobs_added_total",
      "Jobs passed to Queue.add/addMany by outcome (added, duplicate, error).",
      labelNames,
    );
    this.#deliveries = factory.counter(
      "coordis_queue_deliveries_total",
      "Job deliveries by outcome (completed, retry, dead, refused, handed-back, error).",
      labelNames,
    );
    this.#processing = factory.histogram(
      "coordis_queue_processing_duration_seconds",
      "Time a job's handler ran, per delivery, in seconds.",
      labelNames,
      buckets,
      DEFAULT_QUEUE_BUCKETS,
      "options.queueBuckets",
    );
    const gauge = <L extends string>(
      name: string,
      help: string,
      labels: readonly L[],
      set: (g: Gauge<L>, queue: string, info: QueueFigures) => void,
    ) =>
      factory.gauge<L>(name, help, labels, async (g, { queues }) => {
        await queues.refresh();
        g.reset();
        for (const queue of queues.sources.keys()) {
          const info = queues.last.get(queue);
          if (info !== undefined) set(g, queue, info);
        }
      });
    // A source's answer is the user's: a field that is not a finite number is left out, never fails the scrape.
    gauge(
      "coordis_queue_jobs",
      "Jobs of a registered queue by state, read at scrape time.",
      ["queue", "state"],
      (g, q, i) => {
        for (const state of STATES) {
          const n = i[state];
          if (n !== undefined) g.set({ queue: q, state } as never, n);
        }
      },
    );
    gauge(
      "coordis_queue_depth",
      "Jobs of a registered queue not finished yet (waiting + delayed + active).",
      ["queue"],
      (g, q, i) => {
        if (i.waiting === undefined || i.delayed === undefined || i.active === undefined) return;
        const depth = i.waiting + i.delayed + i.active;
        if (reportable(depth)) g.set({ queue: q }, depth);
      },
    );
    gauge(
      "coordis_queue_lag",
      "Jobs of a registered queue ready to run but not yet delivered to a worker.",
      ["queue"],
      (g, q, i) => {
        if (i.waiting !== undefined) g.set({ queue: q }, i.waiting);
      },
    );
    gauge("coordis_queue_paused", "1 while a registered queue is paused, else 0.", ["queue"], (g, q, i) => {
      if (i.paused !== undefined) g.set({ queue: q }, i.paused ? 1 : 0);
    });
  }

  /**
   * Counts a `queue` operation report: `add` by job, `process` per delivery with its handler time (`seconds`,
   * undefined when the report had no finite duration: the delivery is counted, not timed).
   */
  onOperation(e: ReportFields, outcome: string, seconds: number | undefined): void {
    const queue = this.#queueLabel(e.name);
    if (e.op === "add") {
      const jobs = count(e.attribute("jobs"), 1);
      if (outcome === "added") {
        // addMany reports one "added" for the call with how many of its jobs were duplicates.
        const duplicates = Math.min(jobs, count(e.attribute("duplicates"), 0));
        if (jobs > duplicates) this.#added.inc({ queue, outcome }, jobs - duplicates);
        if (duplicates > 0) this.#added.inc({ queue, outcome: "duplicate" }, duplicates);
      } else {
        this.#added.inc({ queue, outcome }, jobs);
      }
    } else if (e.op === "process") {
      this.#deliveries.inc({ queue, outcome });
      if (seconds !== undefined) this.#processing.observe({ queue, outcome }, seconds);
    }
  }

  /**
   * Registers `queue`: its name becomes a label value, and `source` (if any) is read at each scrape. Without a
   * source the queue has no gauges, nor any `coordis_source_*` series (a process that only runs its workers).
   */
  track(queue: string, source: QueueCountsSource | undefined): () => void {
    return this.#tracked.track(queue, source);
  }

  /** The queue's name when it is registered, else {@link UNTRACKED_QUEUE}: names never become labels unasked. */
  #queueLabel(name: unknown): string {
    return typeof name === "string" && this.#tracked.sources.has(name) ? name : UNTRACKED_QUEUE;
  }
}

function count(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.floor(value) : fallback;
}
