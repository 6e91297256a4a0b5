/**
 * @coordis/leaderboard — leaderboards on Redis sorted sets: best / replace / increment policies, daily, weekly,
 * monthly and all-time boards updated by one atomic script, exact earliest-first tie order for every double score,
 * member metadata returned with every entry.
 * @packageDocumentation
 */
export { ClockSkewError, PeriodClosedError, ScoreOverflowError } from "./errors.js";
export { Leaderboard } from "./leaderboard.js";
export {
  type BoardOptions,
  DEFAULT_CLOCK_TOLERANCE_MS,
  DEFAULT_GRACE_MS,
  DEFAULT_META_MAX_BYTES,
  type LeaderboardOptions,
  MAX_BATCH,
  MAX_INCREMENT_SCORE,
  MAX_MEMBER_BYTES,
  MAX_META_BYTES,
  MAX_RADIUS,
  type Order,
  type Submission,
  type SubmitOptions,
  type UpdatePolicy,
} from "./options.js";
export { PERIODS, type Period, type PeriodBucket, periodBucket } from "./periods.js";
export type { Entry, PercentileResult, PeriodResult, Standing, SubmitResult } from "./results.js";
export { leaderboardScripts } from "./scripts.generated.js";
