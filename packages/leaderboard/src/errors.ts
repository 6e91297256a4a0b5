import { CoordisError } from "@coordis/core";

/**
 * An `increment` submit would move a member's score outside ±(2^53 − 1), where doubles stop holding every
 * integer. Raised by the submit script before it writes anything: no board of the call changed.
 */
export class ScoreOverflowError extends CoordisError {
  constructor(message: string) {
    super("ERR_LEADERBOARD_SCORE_OVERFLOW", message);
  }
}

/**
 * A submit's `at` names a time whose period board is no longer accepted: the board's period ended more than
 * `graceMs` ago by Redis server time (it has expired or is about to), or `at` lies after server time by more than
 * `clockToleranceMs`. Nothing was written.
 */
export class PeriodClosedError extends CoordisError {
  constructor(message: string) {
    super("ERR_LEADERBOARD_PERIOD_CLOSED", message);
  }
}

/**
 * This process's clock and Redis server time disagree by more than `clockToleranceMs`, so none of the period
 * boards the call named holds the server's current time. Nothing was written. Fix the clock (NTP) or raise
 * `clockToleranceMs`.
 */
export class ClockSkewError extends CoordisError {
  constructor(message: string) {
    super("ERR_LEADERBOARD_CLOCK_SKEW", message);
  }
}
