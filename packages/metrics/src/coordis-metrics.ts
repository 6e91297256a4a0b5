import {
  type CoordisEvent,
  type CoordisObserver,
  InvalidArgumentError,
  type OperationEvent,
  validate,
} from "@coordis/core";
import {
  register as defaultRegistry,
  type PrometheusContentType,
  type Registry,
  type RegistryContentType,
} from "prom-client";
import { type QueueCountsSource, QueueMetrics, UNTRACKED_QUEUE } from "./queue-metrics.js";
import {
  type AnyRegistry,
  checkBuckets,
  checkRegistry,
  type GroupFigures,
  MetricFactory,
  STATE_ANCHOR,
  sharedState,
} from "./registry-state.js";
import { reportFields } from "./report-fields.js";
import { sourceStatusGauges } from "./source-status.js";

/** Options of {@link coordisMetrics}. */
export interface CoordisMetricsOptions<T extends RegistryContentType = PrometheusContentType> {
  /** Registry to register the metrics in (Prometheus or OpenMetrics format); default prom-client's global `register`. */
  registry?: Registry<T>;
  /**
   * Histogram buckets in seconds (1–100 finite upper bounds, increasing); default 0.1 ms … 10 s, suited to Redis
   * round trips and lock waits. A registry whose Coordis metrics exist keeps theirs: other buckets then throw.
   */
  buckets?: readonly number[];
  /**
   * Most distinct values any one label may take before new ones are reported as `"other"`; 1–10,000, default 50.
   * One cap per registry, shared by every `coordisMetrics()` on it: another value than the first one's throws.
   */
  maxLabelValues?: number;
  /** Buckets of `coordis_queue_processing_duration_seconds` (job handler times), seconds; default 5 ms … 15 min. */
  queueBuckets?: readonly number[];
}

const OPTION_KEYS: readonly (keyof CoordisMetricsOptions)[] = ["registry", "buckets", "maxLabelValues", "queueBuckets"];

/** Largest `maxLabelValues`. */
export const MAX_LABEL_VALUES = 10_000;

/**
 * Default histogram buckets, seconds: 0.1 ms … 10 s. A Redis round trip on a local network takes well under a
 * millisecond, so the low end is fine-grained enough to tell a 0.2 ms round trip from a 0.5 ms one.
 */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

/** A source of event-log consumer-group figures, e.g. `log.group("workers", { consumer }).info`. */
export type GroupInfoSource = () => Promise<GroupInfo | null>;

/** What a {@link GroupInfoSource} answers: entries pending and lag (null when Redis cannot tell). */
export interface GroupInfo {
  pending: number;
  lag: number | null;
}

/** What {@link coordisMetrics} returns. */
export interface CoordisMetrics<T extends RegistryContentType = PrometheusContentType> {
  /** Pass this as `observer` to every Coordis primitive (or combine it with others via `combineObservers`). */
  readonly observer: CoordisObserver;
  /** The registry the metrics live in. */
  readonly registry: Registry<T>;
  /**
   * Reports `coordis_eventlog_group_lag{log,group}` and `coordis_eventlog_group_pending{log,group}` for a consumer
   * group, read from `source` at each scrape (once for both series; a source that fails or takes over 5 s keeps
   * the last figures, and `coordis_source_up{kind="eventlog_group",log,group}` reads 0). Tracking the same log and group again replaces the source. Returns a function that stops
   * tracking it.
   * @throws InvalidArgumentError for an empty, oversized or NUL-containing name or a source that is not a function
   */
  trackEventLogGroup(log: string, group: string, source: GroupInfoSource): () => void;
  /**
   * Registers a job queue of `@coordis/queue`: its name becomes the `queue` label of the `coordis_queue_*` series
   * (reports of queues not registered count under `queue="other"`), and `coordis_queue_jobs{queue,state}`,
   * `coordis_queue_depth{queue}`, `coordis_queue_lag{queue}` and `coordis_queue_paused{queue}` are read from
   * `source` at each scrape, e.g. `metrics.trackQueue(queue.name, () => queue.counts())`, with
   * `coordis_source_up{kind="queue",queue}` and `coordis_source_last_read_timestamp_seconds{kind="queue",queue}` to
   * tell whether those figures are fresh. Without a source only the
   * name is registered (a process that runs the queue's workers and leaves its depth to another). Returns a function
   * that stops tracking it (its gauges go; its counters keep their series).
   * @throws InvalidArgumentError for an empty or oversized name, the reserved name "other", or a source that is not
   *   a function
   */
  trackQueue(queue: string, source?: QueueCountsSource): () => void;
}

/**
 * Creates the Coordis Prometheus metrics and the observer that feeds them. Names follow Prometheus conventions:
 * `coordis_` namespace, base units (seconds), `_total` counters, and only bounded labels (outcomes, rule names,
 * algorithms, lock kinds) — never keys, lock names or user ids.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `coordis_operations_total` | counter | primitive, op, outcome |
 * | `coordis_operation_duration_seconds` | histogram | primitive, op |
 * | `coordis_events_total` | counter | primitive, type |
 * | `coordis_lock_acquire_duration_seconds` | histogram | kind, outcome |
 * | `coordis_lock_acquisitions_total` | counter | kind, outcome |
 * | `coordis_lock_extensions_total` | counter | kind, outcome |
 * | `coordis_lock_leases_lost_total` | counter | kind |
 * | `coordis_ratelimit_decisions_total` | counter | rule, outcome, reason |
 * | `coordis_cache_requests_total` | counter | tier, result |
 * | `coordis_eventlog_appends_total` | counter | outcome |
 * | `coordis_eventlog_group_lag` / `_pending` | gauge | log, group |
 * | `coordis_queue_jobs_added_total` | counter | queue, outcome |
 * | `coordis_queue_deliveries_total` | counter | queue, outcome |
 * | `coordis_queue_processing_duration_seconds` | histogram | queue, outcome |
 * | `coordis_queue_jobs` | gauge | queue, state |
 * | `coordis_queue_depth` / `_lag` / `_paused` | gauge | queue |
 * | `coordis_source_up` | gauge | kind (queue, eventlog_group), queue or log, group |
 * | `coordis_source_last_read_timestamp_seconds` | gauge | kind, queue or log, group |
 *
 * Every call on one registry shares its metrics, label cap and tracked sources.
 *
 * @throws InvalidArgumentError for an unknown option key, a bad option value, buckets or `maxLabelValues` other than
 *   those the registry's Coordis metrics were created with, or a metric of a Coordis name that is not Coordis' in
 *   the registry
 *
 * @example
 * const metrics = coordisMetrics();
 * const mutex = new Mutex(redis, "report-job", { observer: metrics.observer });
 * app.get("/metrics", async (_request, reply) => {
 *   reply.type(metrics.registry.contentType);
 *   return metrics.registry.metrics();
 * });
 */
export function coordisMetrics<T extends RegistryContentType = PrometheusContentType>(
  options?: CoordisMetricsOptions<T>,
): CoordisMetrics<T> {
  validate.options("options", options, OPTION_KEYS);
  options ??= {};
  const registry = (checkRegistry(options.registry) ?? defaultRegistry) as Registry<T>;
  const buckets = options.buckets === undefined ? undefined : checkBuckets("options.buckets", options.buckets);
  const queueBuckets =
    options.queueBuckets === undefined ? undefined : checkBuckets("options.queueBuckets", options.queueBuckets);
  const maxLabelValues =
    options.maxLabelValues === undefined
      ? undefined
      : validate.positiveInteger("options.maxLabelValues", options.maxLabelValues, MAX_LABEL_VALUES);
  const factory = new MetricFactory(registry as AnyRegistry);
  try {
    return createMetrics(factory, registry, buckets, queueBuckets, maxLabelValues);
  } catch (err) {
    // A call that fails (a clashing metric, other buckets) leaves the registry as it was: what it registered would
    // otherwise fix the cap and buckets of the next call, which the error told the user to make.
    factory.rollback();
    throw err;
  }
}

function createMetrics<T extends RegistryContentType>(
  factory: MetricFactory,
  registry: Registry<T>,
  buckets: readonly number[] | undefined,
  queueBuckets: readonly number[] | undefined,
  maxLabelValues: number | undefined,
): CoordisMetrics<T> {
  const operations = factory.counter(STATE_ANCHOR, "Coordis operations by primitive, operation and outcome.", [
    "primitive",
    "op",
    "outcome",
  ]);
  // What every coordisMetrics() on this registry shares hangs off its operations counter (see registry-state.ts).
  const shared = sharedState(operations, maxLabelValues ?? 50);
  if (maxLabelValues !== undefined && maxLabelValues !== shared.maxLabelValues) {
    throw new InvalidArgumentError(
      "options.maxLabelValues",
      `${maxLabelValues} differs from the ${shared.maxLabelValues} of an earlier coordisMetrics() on this registry: ` +
        "the cap is one per registry; pass the same value, or another registry",
    );
  }
  const guard = shared.guard;
  const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    factory.histogram(name, help, labelNames, buckets, DEFAULT_BUCKETS, "options.buckets");

  const durations = histogram(
    "coordis_operation_duration_seconds",
    "Duration of Coordis operations in seconds (including waits).",
    ["primitive", "op"],
  );
  const events = factory.counter("coordis_events_total", "Notable Coordis events (lease lost, reconnects, gaps...).", [
    "primitive",
    "type",
  ]);
  const lockAcquire = histogram(
    "coordis_lock_acquire_duration_seconds",
    "Time to acquire a lock (or to give up), in seconds.",
    ["kind", "outcome"],
  );
  const lockAcquisitions = factory.counter("coordis_lock_acquisitions_total", "Lock acquisition attempts by outcome.", [
    "kind",
    "outcome",
  ]);
  const lockExtensions = factory.counter("coordis_lock_extensions_total", "Lease extensions by outcome.", [
    "kind",
    "outcome",
  ]);
  const leasesLost = factory.counter("coordis_lock_leases_lost_total", "Leases lost after they were acquired.", [
    "kind",
  ]);
  const decisions = factory.counter(
    "coordis_ratelimit_decisions_total",
    "Rate-limit decisions by deciding rule and outcome.",
    ["rule", "outcome", "reason"],
  );
  const cacheRequests = factory.counter("coordis_cache_requests_total", "Cache lookups by tier and result.", [
    "tier",
    "result",
  ]);
  const appends = factory.counter("coordis_eventlog_appends_total", "Event-log appends by outcome.", ["outcome"]);
  const queues = new QueueMetrics(factory, shared.queues, queueBuckets);

  // Each scrape reads every group's source once for both gauges. Ids are "<log>\0<group>".
  const groupGauge = (name: string, help: string, pick: (i: GroupFigures) => number | undefined) =>
    factory.gauge(name, help, ["log", "group"] as const, async (g, { groups }) => {
      await groups.refresh();
      g.reset();
      for (const id of groups.sources.keys()) {
        const info = groups.last.get(id);
        // A source's answer is the user's: a field that is not a finite number was left out of its figures.
        const value = info === undefined ? undefined : pick(info);
        const [log, group] = id.split("\u0000") as [string, string];
        if (value !== undefined) g.set({ log, group }, value);
      }
    });
  groupGauge("coordis_eventlog_group_lag", "Entries in the log not yet delivered to the consumer group.", (i) => i.lag);
  groupGauge(
    "coordis_eventlog_group_pending",
    "Entries delivered to the group but not yet acknowledged.",
    (i) => i.pending,
  );
  // Whether each source's figures are fresh: they are kept, unchanged, when a read fails.
  sourceStatusGauges(factory);

  // A report that is not an object is ignored; one without a finite duration is counted, and left out of the
  // histograms (prom-client throws on it, which lost the rest of the report: the observer must never throw). Its
  // fields are read once, and one that cannot be read (a getter that throws) is a label "invalid" (report-fields.ts).
  const onOperation = (report: OperationEvent) => {
    const e = reportFields(report, "operation");
    if (e === undefined) return;
    const primitive = guard.value("primitive", e.primitive);
    const op = guard.value("op", e.op);
    const outcome = guard.value("outcome", e.outcome);
    const seconds = toSeconds(e.durationMs);
    operations.inc({ primitive, op, outcome });
    if (seconds !== undefined) durations.observe({ primitive, op }, seconds);
    if (e.primitive === "lock") {
      const kind = guard.value("kind", e.attribute("kind") ?? "mutex");
      if (e.op === "acquire") {
        if (seconds !== undefined) lockAcquire.observe({ kind, outcome }, seconds);
        lockAcquisitions.inc({ kind, outcome });
      } else if (e.op === "extend") {
        lockExtensions.inc({ kind, outcome });
      }
    } else if (e.primitive === "ratelimit" && e.op === "consume") {
      decisions.inc({
        rule: guard.value("rule", e.attribute("rule")),
        outcome,
        reason: guard.value("reason", e.attribute("reason") ?? "redis"),
      });
    } else if (e.primitive === "cache") {
      const tier = e.attribute("tier");
      if (tier !== undefined) {
        cacheRequests.inc({
          tier: guard.value("tier", tier),
          result: guard.value("result", e.attribute("result") ?? outcome),
        });
      }
    } else if (e.primitive === "eventlog" && e.op === "append") {
      appends.inc({ outcome });
    } else if (e.primitive === "queue") {
      queues.onOperation(e, outcome, seconds);
    }
  };

  const onEvent = (report: CoordisEvent) => {
    const e = reportFields(report, "event");
    if (e === undefined) return;
    events.inc({ primitive: guard.value("primitive", e.primitive), type: guard.value("type", e.type) });
    if (e.primitive === "lock" && e.type === "lease-lost") {
      leasesLost.inc({ kind: guard.value("kind", e.attribute("kind") ?? "mutex") });
    }
  };

  return {
    observer: { onOperation, onEvent },
    registry,
    trackEventLogGroup(log, group, source) {
      validate.string("log", log, { maxBytes: 1024 });
      validate.string("group", group, { maxBytes: 1024 });
      if (log.includes("\u0000") || group.includes("\u0000")) {
        throw new InvalidArgumentError(log.includes("\u0000") ? "log" : "group", "must not contain NUL characters");
      }
      validate.func("source", source);
      return shared.groups.track(`${log}\u0000${group}`, source);
    },
    trackQueue(queue, source) {
      validate.string("queue", queue, { maxBytes: 1024 });
      if (queue === UNTRACKED_QUEUE) {
        throw new InvalidArgumentError(
          "queue",
          `"${UNTRACKED_QUEUE}" is the label of every queue that is not tracked, so it cannot name a tracked one`,
        );
      }
      if (source !== undefined) validate.func("source", source);
      return queues.track(queue, source);
    },
  };
}

/** A report's duration in seconds (negative ones as 0), or undefined when it is not a finite number of ms. */
function toSeconds(durationMs: unknown): number | undefined {
  return typeof durationMs === "number" && Number.isFinite(durationMs) ? Math.max(0, durationMs) / 1000 : undefined;
}
