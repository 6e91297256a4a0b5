/**
 * @coordis/demo — the game-scores API that shows every Coordis primitive across several replicas.
 * @packageDocumentation
 */

export { Activity, type ActivitySeries, BUCKET_MS, WINDOW_MS } from "./activity.js";
export {
  API_KEY_ID_PATTERN,
  API_KEY_PATTERN,
  ApiKeys,
  isWellFormedApiKey,
  keepApiKeySecret,
  loadApiKeySecret,
} from "./apikeys.js";
export { type BuildOptions, buildApp } from "./app.js";
export { DEFAULT_PORT, type DemoConfig, ENV_NAMES, loadConfig, localUrl, randomToken } from "./config.js";
export { stopWithParent } from "./launch.js";
export type { AuditEvent, BoardEntry, DemoMessage } from "./model.js";
export { SseHub, type SseLimits, type SseStats } from "./sse.js";
export {
  type PlayerStats,
  POISON_NAME,
  STATS_QUEUE,
  type StatsJobData,
  type StatsJobResult,
  StatsStore,
  statsJobId,
} from "./stats.js";
