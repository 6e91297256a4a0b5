import type { Entry } from "./entries.js";

/** Result of {@link EventLog.append}. */
export interface AppendResult {
  /** The entry's id (the first append's id for a duplicate). */
  readonly id: string;
  /** True when the idempotency key had been used within its window: nothing was appended. */
  readonly duplicate: boolean;
  /** With `idempotencyConflict: "report"`: true when the key had been used with a different payload. */
  readonly conflict?: boolean;
}

/** A page of {@link EventLog.read}. */
export interface ReadPage<T> {
  readonly entries: Entry<T>[];
  /**
   * Present when more entries follow in the reading direction: pass it as `after` (forward) or `before`
   * (`reverse: true`) to read the next page.
   */
  readonly next?: string;
}

/** Most entries {@link VerifyResult.unchained} lists. */
export const MAX_REPORTED = 1_000;

/** Result of {@link EventLog.verify}. */
export interface VerifyResult {
  /** True when every entry of the stream is a valid link and the chain ends at the recorded head. */
  readonly ok: boolean;
  /** Id of the first entry where something is wrong (a broken link or an entry not part of the chain). */
  readonly brokenAt?: string;
  /** What is wrong there. */
  readonly reason?: string;
  /** Valid entries of the chain checked. */
  readonly checked: number;
  /**
   * Every entry of the stream that is not part of the chain, oldest first (at most {@link MAX_REPORTED} listed;
   * `unchainedCount` counts them all): added by something other than EventLog.append (missing chain fields, or after
   * the recorded head), changed, or with a hash/MAC that does not verify.
   */
  readonly unchained: ReadonlyArray<{ readonly id: string; readonly reason: string }>;
  readonly unchainedCount: number;
}

/** An entry of the dead-letter stream. */
export interface DeadLetter<T = unknown> {
  /** Id in the dead-letter stream. */
  readonly id: string;
  /** Id of the original entry in the log. */
  readonly entryId: string;
  readonly group: string;
  /**
   * The consumer that held the entry when it was dead-lettered: the one whose handler failed its last delivery, or,
   * for a dead letter made by a claim, the one that left it idle (it died, stalled or was cut off from Redis). Dead
   * letters written by a claim of a release before `claimedBy` existed name the claiming consumer here.
   */
  readonly consumer: string;
  /**
   * Present when a claim dead-lettered the entry (delivered more than `maxDeliveries` times and left idle by
   * `consumer`): the consumer whose claim did it, which never ran the entry.
   */
  readonly claimedBy?: string;
  /** Deliveries the entry had when it was dead-lettered. */
  readonly deliveries: number;
  readonly error: string;
  readonly data: T | undefined;
}

/** The keys of one log (all share the hash tag `{name}`). */
export interface EventLogKeys {
  /** The stream, `<prefix>:log:{name}`. */
  readonly stream: string;
  /** Sequence counter, last id, chain head and trim anchor. */
  readonly meta: string;
  /** Dead-letter stream of the log's consumer groups. */
  readonly dlq: string;
  /**
   * Index of the dead letters consumers' claims made (entry id, group, holder, dead letter id; about the newest 1000
   * kept), where a holder whose handler succeeded late finds its dead letter without reading the dead-letter stream.
   */
  readonly deadLetterIndex: string;
  /** Idempotency record of one key. */
  dedupe(idempotencyKey: string): string;
}

/** What a handler learns besides the entry. */
export interface ConsumeContext {
  /** How many times this entry has been delivered to the group, this delivery included (1 = first). */
  readonly deliveries: number;
}

/**
 * Processes one entry. Resolve to acknowledge it; throw (or reject) to leave it pending, so it is delivered again
 * after `claimIdleMs`, until `maxDeliveries` is reached and it goes to the dead-letter stream.
 */
export type ConsumeHandler<T> = (entry: Entry<T>, context: ConsumeContext) => void | Promise<void>;

/** Counters of a running {@link Consumer}. */
export interface ConsumerStats {
  /**
   * Entries acknowledged by this consumer's XACKs after a successful handler (as XACK replies: an entry that was no
   * longer pending, acknowledged meanwhile by another consumer that reclaimed it, is not counted).
   */
  readonly acked: number;
  /**
   * Entries whose handler succeeded here after a claim had dead-lettered them (this consumer held them past
   * `claimIdleMs` without refreshing them: a stall): their XACK found them acknowledged, and their dead letter was
   * removed, since they were handled. Not counted in `acked`.
   */
  readonly ackedLate: number;
  /** Handler failures (entries left pending or dead-lettered). */
  readonly failed: number;
  /** Entries this consumer moved to the dead-letter stream. */
  readonly deadLettered: number;
  /** Entries reclaimed from idle consumers (including itself). */
  readonly claimed: number;
}

/** One consumer's state, from XINFO CONSUMERS. */
export interface ConsumerInfo {
  readonly name: string;
  /** Entries delivered to it and not yet acknowledged. */
  readonly pending: number;
  /** Ms since it last read or claimed. */
  readonly idleMs: number;
}

/** A group's state for metrics, from XINFO GROUPS and XINFO CONSUMERS. */
export interface GroupInfo {
  readonly name: string;
  /** Entries delivered and not yet acknowledged (the group's PEL). */
  readonly pending: number;
  /** Entries not yet delivered to any consumer; `null` when Redis cannot tell (after XDEL/trims past the group). */
  readonly lag: number | null;
  readonly lastDeliveredId: string;
  /** Entries read by the group so far (`entries-read`), `null` when unknown. */
  readonly entriesRead: number | null;
  readonly consumers: ConsumerInfo[];
}
