import { InvalidArgumentError, validate } from "@coordis/core";
import {
  Counter,
  Gauge,
  Histogram,
  type OpenMetricsContentType,
  type PrometheusContentType,
  type Registry,
} from "prom-client";
import { LabelGuard } from "./label-guard.js";
import { ScrapeSources } from "./scrape-sources.js";

/** A registry of either format (prom-client types them apart by their content type). */
export type AnyRegistry = Registry<PrometheusContentType> | Registry<OpenMetricsContentType>;

/** What the gauges read of a consumer-group source's answer (see GroupInfo in coordis-metrics.ts). */
export interface GroupFigures {
  readonly pending: number | undefined;
  readonly lag: number | undefined;
}

const QUEUE_STATES = ["waiting", "delayed", "active", "completed", "dead", "cancelled"] as const;

/** What the gauges read of a queue source's answer (see QueueCountsInfo): each field a finite number, or left out. */
export type QueueFigures = { readonly [S in (typeof QUEUE_STATES)[number]]: number | undefined } & {
  readonly paused: boolean | undefined;
};

/**
 * What every `coordisMetrics()` on one registry shares: the label guard (one cap per registry) and the sources read
 * at scrape time. It hangs off the registry's `coordis_operations_total` counter, so a registry made with
 * `Registry.merge` from one that holds the Coordis metrics finds the same state (and its gauges' sources). The gauges
 * look it up at each scrape, so they read the state of the counter the registry holds now. Internal.
 */
export interface SharedState {
  readonly maxLabelValues: number;
  readonly guard: LabelGuard;
  readonly groups: ScrapeSources<GroupFigures>;
  readonly queues: ScrapeSources<QueueFigures>;
}

const states = new WeakMap<object, SharedState>();
/** The metric the shared state hangs off: every coordisMetrics() creates it first. */
export const STATE_ANCHOR = "coordis_operations_total";
/** The gauges this copy of the package created: their `collect` reads the shared sources. */
const ownGauges = new WeakSet<object>();

/** The state shared through `anchor` (the registry's operations counter), created with `maxLabelValues` if new. */
export function sharedState(anchor: object, maxLabelValues: number): SharedState {
  let state = states.get(anchor);
  if (state === undefined) {
    state = {
      maxLabelValues,
      guard: new LabelGuard(maxLabelValues),
      groups: new ScrapeSources((a) => ({ pending: figure(a, "pending"), lag: figure(a, "lag") })),
      queues: new ScrapeSources(queueFigures),
    };
    states.set(anchor, state);
  }
  return state;
}

/**
 * The state the registry's Coordis metrics share now, read at each scrape: the gauges of a registry whose operations
 * counter was removed and created again (by a later coordisMetrics()) read the sources tracked through the new one.
 */
function stateOf(registry: AnyRegistry): SharedState | undefined {
  const anchor = registry.getSingleMetric(STATE_ANCHOR);
  return anchor === undefined ? undefined : states.get(anchor);
}

/** The shape of a prom-client metric as far as the checks below read it. */
interface MetricShape {
  type?: unknown;
  labelNames?: unknown;
  upperBounds?: unknown;
}

const list = (values: readonly unknown[]) => `[${values.join(", ")}]`;

/**
 * Gets or creates the metrics of one registry. A metric of the same name already in the registry is reused only when
 * it is what Coordis would have created (type, label names, and buckets when they were asked for); anything else is
 * an InvalidArgumentError naming the metric, instead of reports that throw inside the observer and vanish. Internal.
 */
export class MetricFactory {
  readonly #registry: AnyRegistry;
  readonly #registers: AnyRegistry[];

  /** Names of the metrics this factory registered (see {@link rollback}). */
  readonly #created: string[] = [];

  constructor(registry: AnyRegistry) {
    this.#registry = registry;
    this.#registers = [registry];
  }

  /** Removes from the registry every metric this factory registered (a coordisMetrics() call that failed). */
  rollback(): void {
    for (const name of this.#created.splice(0)) this.#registry.removeSingleMetric(name);
  }

  counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    const existing = this.#existing(name, "counter", labelNames);
    if (existing !== undefined) return existing as unknown as Counter<L>;
    const counter = new Counter({ name, help, labelNames, registers: this.#registers });
    this.#created.push(name);
    return counter;
  }

  /** `buckets` undefined: the existing histogram's, whatever they are, or `fallback` for a new one. */
  histogram<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    buckets: readonly number[] | undefined,
    fallback: readonly number[],
    option: string,
  ): Histogram<L> {
    const existing = this.#existing(name, "histogram", labelNames);
    if (existing !== undefined) {
      const bounds = Array.isArray(existing.upperBounds) ? (existing.upperBounds as unknown[]) : [];
      if (buckets !== undefined && (bounds.length !== buckets.length || buckets.some((b, i) => bounds[i] !== b))) {
        throw new InvalidArgumentError(
          option,
          `${list(buckets)} differs from the buckets ${list(bounds)} the registry's "${name}" was created with: ` +
            "every coordisMetrics() on one registry shares its metrics; pass the same buckets, or another registry",
        );
      }
      return existing as unknown as Histogram<L>;
    }
    const histogram = new Histogram({
      name,
      help,
      labelNames,
      buckets: [...(buckets ?? fallback)],
      registers: this.#registers,
    });
    this.#created.push(name);
    return histogram;
  }

  /**
   * A gauge whose `collect` is `collect`, handed the registry's shared state at each scrape (none: the gauge reports
   * nothing). Created once per registry; reused only when this package made it. `aggregator`: how prom-client's
   * `AggregatorRegistry` combines the Node cluster workers' values of one series.
   */
  gauge<L extends string>(
    name: string,
    help: string,
    labelNames: readonly L[],
    collect: (g: Gauge<L>, state: SharedState) => Promise<void>,
    aggregator: "max" | "min" = "max",
  ) {
    const existing = this.#existing(name, "gauge", labelNames);
    if (existing !== undefined) {
      if (!ownGauges.has(existing)) {
        throw new InvalidArgumentError(
          "options.registry",
          `holds a gauge "${name}" that this copy of @coordis/metrics did not create, so it would never report: ` +
            `remove it (registry.removeSingleMetric("${name}")) or give coordisMetrics() another registry`,
        );
      }
      return;
    }
    const registry = this.#registry;
    const gauge = new Gauge<L>({
      name,
      help,
      labelNames,
      // By default the figures are Redis' (a queue's counts, a group's lag), read alike by every worker that tracks
      // them: Node cluster aggregation (prom-client's AggregatorRegistry) keeps one of them instead of summing them.
      aggregator,
      registers: this.#registers,
      async collect() {
        const state = stateOf(registry);
        if (state !== undefined) return collect(this, state);
        this.reset();
      },
    });
    ownGauges.add(gauge);
    this.#created.push(name);
  }

  #existing(name: string, type: string, labelNames: readonly string[]): MetricShape | undefined {
    const metric = this.#registry.getSingleMetric(name) as MetricShape | undefined;
    if (metric === undefined) return undefined;
    const labels = Array.isArray(metric.labelNames) ? (metric.labelNames as unknown[]) : [];
    if (metric.type !== type || labels.length !== labelNames.length || labelNames.some((l, i) => labels[i] !== l)) {
      throw new InvalidArgumentError(
        "options.registry",
        `holds a metric "${name}" (${String(metric.type)}, labels ${list(labels)}) that is not Coordis' ` +
          `(${type}, labels ${list(labelNames)}): remove it (registry.removeSingleMetric("${name}")) or give ` +
          "coordisMetrics() another registry",
      );
    }
    return metric;
  }
}

/**
 * Checks a histogram bucket list: a non-empty array of at most 100 finite numbers in strictly increasing order.
 * Returns a frozen copy (prom-client freezes the array it is given, which would freeze the caller's).
 */
export function checkBuckets(argument: string, value: unknown): readonly number[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 100) {
    throw new InvalidArgumentError(argument, "expected an array of 1 to 100 bucket upper bounds in seconds");
  }
  for (let i = 0; i < value.length; i++) {
    const b: unknown = value[i];
    if (typeof b !== "number" || !Number.isFinite(b)) {
      throw new InvalidArgumentError(
        `${argument}[${i}]`,
        `expected a finite number of seconds, got ${validate.describeValue(b)}`,
      );
    }
    if (i > 0 && b <= (value[i - 1] as number)) {
      throw new InvalidArgumentError(`${argument}[${i}]`, `${b} must be above the bucket before it, ${value[i - 1]}`);
    }
  }
  return Object.freeze([...(value as number[])]);
}

/** Checks the `registry` option: a prom-client Registry (of any copy of prom-client). */
export function checkRegistry(value: unknown): AnyRegistry | undefined {
  if (value === undefined) return undefined;
  const r = value as { getSingleMetric?: unknown; registerMetric?: unknown; metrics?: unknown } | null;
  if (
    r === null ||
    typeof r !== "object" ||
    typeof r.getSingleMetric !== "function" ||
    typeof r.registerMetric !== "function" ||
    typeof r.metrics !== "function"
  ) {
    throw new InvalidArgumentError("options.registry", "expected a prom-client Registry");
  }
  return value as AnyRegistry;
}

/** A number a gauge may report: finite. */
export function reportable(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/**
 * Field `name` of a source's answer when it is a finite number, else undefined. Never throws: the answer is the
 * user's (a getter that throws, a bigint or a Symbol field once failed the whole scrape).
 */
function field(answer: object, name: string): unknown {
  try {
    return (answer as Record<string, unknown>)[name];
  } catch {
    return undefined;
  }
}

function figure(answer: object, name: string): number | undefined {
  const value = field(answer, name);
  return reportable(value) ? value : undefined;
}

function queueFigures(answer: object): QueueFigures {
  const paused = field(answer, "paused");
  const figures: Record<string, number | boolean | undefined> = {
    paused: typeof paused === "boolean" ? paused : undefined,
  };
  for (const state of QUEUE_STATES) figures[state] = figure(answer, state);
  return figures as QueueFigures;
}
