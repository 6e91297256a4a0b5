import type { Gauge } from "prom-client";
import type { MetricFactory, SharedState } from "./registry-state.js";
import type { ScrapeSources } from "./scrape-sources.js";

/**
 * The labels of the `coordis_source_*` series: `kind` names the gauges the source feeds (`queue`: the
 * `coordis_queue_*` gauges; `eventlog_group`: the `coordis_eventlog_group_*` ones), then the labels those gauges
 * carry (`queue`, or `log` and `group`), so a status joins its figures `on(queue)` or `on(log, group)`.
 */
const LABELS = ["kind", "queue", "log", "group"] as const;
type Label = (typeof LABELS)[number];

/** Each kind of source: where its registrations live and the labels an id stands for. */
const KINDS: ReadonlyArray<{
  readonly sources: (state: SharedState) => ScrapeSources<unknown>;
  readonly labels: (id: string) => Partial<Record<Label, string>>;
}> = [
  { sources: (s) => s.queues, labels: (queue) => ({ kind: "queue", queue }) },
  {
    sources: (s) => s.groups,
    labels: (id) => {
      // Ids are "<log>\0<group>" (see trackEventLogGroup).
      const [log, group] = id.split("\u0000") as [string, string];
      return { kind: "eventlog_group", log, group };
    },
  },
];

/**
 * Registers `coordis_source_up` and `coordis_source_last_read_timestamp_seconds`: whether each tracked source's read
 * at this scrape gave figures, and when its last read that did ended (Unix seconds). A source registered without a
 * function (a queue's workers-only registration) has neither; one that never gave figures has `up` 0 and no
 * timestamp; an untracked one has neither.
 *
 * Under Node cluster (prom-client's AggregatorRegistry) both take the lowest value of the workers: the figure
 * gauges keep the largest figure any worker holds, which may be a stale worker's, so the aggregate is only as fresh
 * as the stalest worker's read, and up only when every worker's read succeeded.
 */
export function sourceStatusGauges(factory: MetricFactory): void {
  const gauge = (
    name: string,
    help: string,
    value: (sources: ScrapeSources<unknown>, id: string) => number | undefined,
  ) =>
    factory.gauge(
      name,
      help,
      LABELS,
      async (g: Gauge<Label>, state) => {
        // Shared with the figure gauges of the scrape: each source is read once.
        await Promise.all(KINDS.map((k) => k.sources(state).refresh()));
        g.reset();
        for (const kind of KINDS) {
          const sources = kind.sources(state);
          for (const id of sources.sources.keys()) {
            const v = value(sources, id);
            if (v !== undefined) g.set(kind.labels(id), v);
          }
        }
      },
      "min",
    );
  gauge(
    "coordis_source_up",
    "1 when a tracked source's read at this scrape gave figures, 0 when it failed, answered null or timed out.",
    (sources, id) => {
      const up = sources.up.get(id);
      return up === undefined ? undefined : up ? 1 : 0;
    },
  );
  gauge(
    "coordis_source_last_read_timestamp_seconds",
    "When a tracked source last gave the figures its gauges report, Unix seconds.",
    (sources, id) => {
      const at = sources.readAt.get(id);
      return at === undefined ? undefined : at / 1000;
    },
  );
}
