import { CoordisError } from "@coordis/core";

/**
 * A tail could not continue without skipping entries: the entries after `after` (the last id it yielded, or the
 * `from` cursor it was started with) were trimmed by retention or deleted before it read them, or the log was lost
 * and started over. `missed` is how many, when known. Start a new tail from `"start"` (oldest kept entry) or from
 * `resumeAfter` to go on knowingly.
 */
export class GapError extends CoordisError {
  /** The last id the tail had (exclusive cursor). */
  readonly after: string;
  /** The id just before the first entry available after the gap, when known: `tail({ from: resumeAfter })` goes on. */
  readonly resumeAfter: string | undefined;
  /**
   * Number of entries skipped (at least 1), counted from the sequence numbers of the last entry yielded and the next
   * one available; `undefined` when it cannot be known: the tail resumed from a cursor whose own entry was trimmed,
   * or the sequence went backwards (the log was lost and started over, e.g. a Redis restart without persistence).
   */
  readonly missed: number | undefined;

  constructor(after: string, resumeAfter: string | undefined, missed: number | undefined) {
    super(
      "ERR_EVENTLOG_GAP",
      `entries after ${after} were trimmed or deleted before the tail read them` +
        (missed === undefined ? "" : ` (${missed} missed)`),
    );
    this.after = after;
    this.resumeAfter = resumeAfter;
    this.missed = missed;
  }
}
