/**
 * @coordis/metrics — prom-client metrics for every Coordis primitive, fed by the core observer.
 * @packageDocumentation
 */
export {
  type CoordisMetrics,
  type CoordisMetricsOptions,
  coordisMetrics,
  DEFAULT_BUCKETS,
  type GroupInfo,
  type GroupInfoSource,
  MAX_LABEL_VALUES,
} from "./coordis-metrics.js";
export { LabelGuard } from "./label-guard.js";
export {
  DEFAULT_QUEUE_BUCKETS,
  type QueueCountsInfo,
  type QueueCountsSource,
  UNTRACKED_QUEUE,
} from "./queue-metrics.js";
export { SOURCE_TIMEOUT_MS } from "./scrape-sources.js";
