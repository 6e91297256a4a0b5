import { CoordisError } from "@coordis/core";

/**
 * A tail could not continue without skipping entries: the entries after `after` (the last id it yielded, or the
 * `from` cursor it was started with) were trimmed by retention or deleted before it read them, or the log was lost
 * and started over (also when the tail resumed from a cursor of the lost log). `missed` is how many, when known. Start a new tail from `"start"` (oldest kept entry) or from
 * `resumeAfter` to go on knowingly.
 */
export class GapError extends CoordisError {
  /** The last id the tail had (exclusive cursor). */
  readonly after: string;
  /**
   * Where `tail({ from: resumeAfter })` goes on, when known: the id just before the first entry available after the
   * gap, or the log's last id when every entry after the cursor was deleted (the next entry appended comes after it).
   */
  readonly resumeAfter: string | undefined;
  /**
   * Number of entries skipped (at least 1), counted from the sequence numbers of the last entry yielded and the next
   * one available; `undefined` when it cannot be known: the tail resumed from a cursor whose own entry was trimmed
   * or deleted, or from a cursor of a log that was lost and started over, or the sequence went backwards (the log was lost and
   * started over, e.g. a Redis restart without persistence).
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

/**
 * An idempotency key was used again within its window with a different payload: nothing was appended. Almost always
 * a client bug (a key reused for another operation). `entryId` is the entry the key first appended.
 */
export class IdempotencyConflictError extends CoordisError {
  readonly idempotencyKey: string;
  readonly entryId: string;

  constructor(idempotencyKey: string, entryId: string) {
    super(
      "ERR_EVENTLOG_IDEMPOTENCY_CONFLICT",
      `idempotency key ${JSON.stringify(idempotencyKey.slice(0, 80))} was already used for a different payload (entry ${entryId})`,
    );
    this.idempotencyKey = idempotencyKey;
    this.entryId = entryId;
  }
}

/**
 * A chained log holds an entry that is not a valid part of its chain (not appended by EventLog.append, changed,
 * forged, or following a deleted entry): `read()` / `tail()` with `unverified: "reject"` (the default) throw this
 * instead of returning it.
 */
export class UnverifiedEntryError extends CoordisError {
  readonly entryId: string;
  readonly reason: string;

  constructor(entryId: string, reason: string) {
    super("ERR_EVENTLOG_UNVERIFIED", `entry ${entryId} is not a valid part of the chain: ${reason}`);
    this.entryId = entryId;
    this.reason = reason;
  }
}
