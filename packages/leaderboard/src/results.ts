import type { Period } from "./periods.js";

/** One ranked member. */
export interface Entry<M = unknown> {
  /** The member id. */
  readonly member: string;
  /** Its score on the board read. */
  readonly score: number;
  /** 1-based rank; equal scores rank by arrival (earliest first), so ranks are unique. */
  readonly rank: number;
  /** The member's metadata, or `null` when none was stored. */
  readonly meta: M | null;
}

/** A member's standing as returned by {@link Leaderboard.rank}: an entry plus the board's size. */
export interface Standing<M = unknown> extends Entry<M> {
  /** Number of members on the board. */
  readonly count: number;
}

/** A member's percentile as returned by {@link Leaderboard.percentile}. */
export interface PercentileResult<M = unknown> extends Standing<M> {
  /** Share (0..100) of the other members ranked below this one: 100 for the leader, 0 for the last. */
  readonly percentile: number;
}

/** The outcome of a submit on one period board. */
export interface PeriodResult {
  /** The bucket id (`"all"`, `"2026-11-26"`, `"2026-W48"`, `"2026-11"`). */
  readonly bucket: string;
  /** The member's score on this board after the submit. */
  readonly score: number;
  /** The member's 1-based rank on this board after the submit. */
  readonly rank: number;
  /** Whether the submit changed the member's score (or added it). */
  readonly updated: boolean;
}

/** The outcome of a submit: the first configured period's result at the top level, every period in `periods`. */
export interface SubmitResult extends PeriodResult {
  /** Result per configured period. */
  readonly periods: Readonly<Partial<Record<Period, PeriodResult>>>;
}
