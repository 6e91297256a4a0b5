/**
 * Options of consumer groups and their consumers ({@link EventLog.group}, {@link ConsumerGroup.consume},
 * {@link Consumer.stop}): the public option types, their limits and defaults, and their parsing (each options object
 * checked as a whole, unknown keys rejected).
 */
import { InvalidArgumentError, validate } from "@coordis/core";

/** Longest group or consumer name, in UTF-8 bytes. */
export const MAX_GROUP_NAME_BYTES = 256;
/** Default deadline of {@link Consumer.stop}, ms. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** Options of {@link EventLog.group}. */
export interface ConsumerGroupOptions {
  /** This process' consumer name within the group, unique per running consumer (e.g. host + pid). */
  consumer: string;
  /**
   * Where a group that does not exist yet starts: `"start"` (default: every kept entry, so nothing appended before
   * the first consumer is skipped) or `"end"` (only entries appended after creation). A group that vanishes while a
   * consumer runs (the log lost, or the group destroyed) is created again from the start of the stream either way.
   */
  startAt?: "start" | "end";
}

/** Options of {@link ConsumerGroup.consume}. */
export interface ConsumeOptions {
  /**
   * Handlers running at once in this consumer (1–1000); default 1. It also bounds what the consumer holds: a read or
   * claim asks only for free slots (reads and claims take turns, so they never bring more than can start), and at
   * most `concurrency` entries await their XACK without taking a slot, so at most `2 × concurrency` entries are
   * running or awaiting their XACK. Synchronous or very short handlers gain from a higher value: each read can then
   * bring more entries (it costs them nothing else).
   */
  concurrency?: number;
  /**
   * Entries left pending this long (ms, 10 ms – 1 day) are reclaimed from their consumer; default 30,000. A live
   * consumer keeps the entries it holds (running, or awaiting their XACK) from getting this old: see
   * {@link Consumer}. So an entry is reclaimed when its handler failed, or when its consumer died or could not reach
   * Redis for about this long.
   */
  claimIdleMs?: number;
  /** Deliveries before an entry is dead-lettered (1–1000); default 5. */
  maxDeliveries?: number;
  /**
   * Most entries fetched per read or claim (1–1000); default 10. A read or claim asks for no more entries than there
   * are free handler slots, and reads and claims take turns, so every entry received starts at once instead of
   * waiting in this consumer while other consumers of the group could take it. The next read is sent as soon as a
   * slot is free, while other handlers still run.
   */
  batch?: number;
  /**
   * How long one blocking XREADGROUP waits, ms (10–60,000); default 1000. A read blocks no longer than until the
   * next claim is due. `stop()` takes at most this long.
   */
  blockMs?: number;
  /**
   * How often pending entries are checked for reclaiming, ms; default `claimIdleMs / 2` (10 ms – 5 s). A claim runs
   * between reads, when a handler slot is free.
   */
  claimIntervalMs?: number;
}

/** Options of {@link Consumer.stop}. */
export interface StopOptions {
  /** Deadline, ms (1 ms – 1 day); default {@link DEFAULT_STOP_TIMEOUT_MS}. */
  timeoutMs?: number;
}

const DAY_MS = 86_400_000;

const GROUP_KEYS: readonly (keyof ConsumerGroupOptions)[] = ["consumer", "startAt"];
const CONSUME_KEYS: readonly (keyof ConsumeOptions)[] = [
  "concurrency",
  "claimIdleMs",
  "maxDeliveries",
  "batch",
  "blockMs",
  "claimIntervalMs",
];
const STOP_KEYS: readonly (keyof StopOptions)[] = ["timeoutMs"];

/** Validates a group or consumer name. */
function groupName(argument: string, value: unknown): string {
  return validate.string(argument, value, { minBytes: 1, maxBytes: MAX_GROUP_NAME_BYTES });
}

/** A consumer group's name and options after validation. */
export interface GroupSettings {
  readonly name: string;
  readonly consumer: string;
  readonly startAt: "start" | "end";
}

/** Validates group()'s name and options (as a whole; `consumer` is required). */
export function parseGroup(name: unknown, raw: unknown): GroupSettings {
  const checked = groupName("groupName", name);
  if (raw === undefined) throw new InvalidArgumentError("options.consumer", "a consumer name is required");
  const o = validate.options<ConsumerGroupOptions>("options", raw, GROUP_KEYS);
  return {
    name: checked,
    consumer: groupName("options.consumer", o.consumer),
    startAt:
      o.startAt === undefined ? "start" : validate.oneOf("options.startAt", o.startAt, ["start", "end"] as const),
  };
}

/** {@link ConsumeOptions} after validation, defaults filled in. */
export interface ConsumeSettings {
  readonly concurrency: number;
  readonly claimIdleMs: number;
  readonly maxDeliveries: number;
  readonly batch: number;
  readonly blockMs: number;
  readonly claimIntervalMs: number;
}

/** Validates consume()'s options as a whole. */
export function parseConsumeOptions(raw: unknown): ConsumeSettings {
  const o = validate.options<ConsumeOptions>("options", raw, CONSUME_KEYS);
  const claimIdleMs =
    o.claimIdleMs === undefined
      ? 30_000
      : validate.durationMs("options.claimIdleMs", o.claimIdleMs, { min: 10, max: DAY_MS });
  return {
    concurrency:
      o.concurrency === undefined ? 1 : validate.positiveInteger("options.concurrency", o.concurrency, 1_000),
    claimIdleMs,
    maxDeliveries:
      o.maxDeliveries === undefined ? 5 : validate.positiveInteger("options.maxDeliveries", o.maxDeliveries, 1_000),
    batch: o.batch === undefined ? 10 : validate.positiveInteger("options.batch", o.batch, 1_000),
    blockMs:
      o.blockMs === undefined ? 1_000 : validate.durationMs("options.blockMs", o.blockMs, { min: 10, max: 60_000 }),
    claimIntervalMs:
      o.claimIntervalMs === undefined
        ? Math.min(Math.max(Math.floor(claimIdleMs / 2), 10), 5_000)
        : validate.durationMs("options.claimIntervalMs", o.claimIntervalMs, { min: 10, max: DAY_MS }),
  };
}

/** Validates stop()'s options as a whole; returns the deadline in ms. */
export function parseStopOptions(raw: unknown): number {
  const o = validate.options<StopOptions>("options", raw, STOP_KEYS);
  return o.timeoutMs === undefined
    ? DEFAULT_STOP_TIMEOUT_MS
    : validate.durationMs("options.timeoutMs", o.timeoutMs, { min: 1, max: DAY_MS });
}
