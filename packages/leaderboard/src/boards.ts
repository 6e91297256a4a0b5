import type { EntityKeys } from "@coordis/core";
import type { LeaderboardSettings } from "./options.js";
import { type Period, type PeriodBucket, periodBucket } from "./periods.js";

/** One period bucket's board: its sorted set and the index of the arrival order of its scores. */
export interface Board {
  readonly bucket: PeriodBucket;
  readonly zset: string;
  readonly index: string;
}

/** The candidates of the all-time period: its one bucket. */
const ALL_BUCKETS: readonly PeriodBucket[] = Object.freeze([periodBucket("all", 0)]);

/**
 * Which boards (keys and bucket bounds) a call names. A call without `at` cannot know which bucket Redis server time
 * falls in, so it names every bucket within `clockToleranceMs` of local time and the script picks the one holding
 * server time.
 */
export class Boards {
  readonly #keys: EntityKeys;
  readonly #settings: LeaderboardSettings;
  /** The last board built per period: most calls hit the current bucket's board. */
  readonly #last = new Map<Period, Board>();

  constructor(keys: EntityKeys, settings: LeaderboardSettings) {
    this.#keys = keys;
    this.#settings = settings;
  }

  /** The buckets a call may touch for `period`: the exact one for `at`, else those within the clock tolerance. */
  candidates(period: Period, at: number | undefined, now: number): readonly PeriodBucket[] {
    if (period === "all") return ALL_BUCKETS;
    const offset = this.#settings.offsetMinutes;
    if (at !== undefined) return [periodBucket(period, at, offset)];
    const tolerance = this.#settings.toleranceMs;
    const out: PeriodBucket[] = [];
    for (const t of [now - tolerance, now, now + tolerance]) {
      const b = periodBucket(period, t, offset);
      if (!out.some((o) => o.id === b.id)) out.push(b);
    }
    return out;
  }

  /** The candidate boards of a query on `period` (see {@link candidates}). */
  forQuery(period: Period, at: number | undefined): Board[] {
    return this.candidates(period, at, Date.now()).map((b) => this.board(b));
  }

  /**
   * Every board of every configured period that may still exist: all-time, and per period from the newest bucket
   * the server may be in back to the oldest whose end is within `graceMs` (+ tolerance) of now. With period boards,
   * also the window of Redis server times in which these are all the boards that can exist: after the expiry of the
   * newest bucket left out below them, and before the first time a submit (`at` up to `clockToleranceMs` after server
   * time) could reach a bucket after them. A clock off by more than the tolerance may name boards that miss one; the
   * script checks server time against the window instead of trusting this clock (`undefined`: the all-time board
   * alone, which holds every time).
   */
  alive(): { boards: Board[]; window: readonly [after: number, before: number] | undefined } {
    const { periods, offsetMinutes, graceMs, toleranceMs } = this.#settings;
    const boards: Board[] = [];
    const now = Date.now();
    let after = Number.NEGATIVE_INFINITY;
    let before = Number.POSITIVE_INFINITY;
    for (const period of periods) {
      if (period === "all") {
        boards.push(this.board(periodBucket("all", 0)));
        continue;
      }
      // A submit's `at` may run clockToleranceMs ahead of server time, which may run that far ahead of ours.
      let bucket = periodBucket(period, now + 2 * toleranceMs, offsetMinutes);
      before = Math.min(before, bucket.endMs - toleranceMs);
      while (bucket.endMs + graceMs + toleranceMs > now) {
        boards.push(this.board(bucket));
        bucket = periodBucket(period, bucket.startMs - 1, offsetMinutes);
      }
      // The first bucket left out expires graceMs after its end (Redis keeps a key until after its expiry time).
      after = Math.max(after, bucket.endMs + graceMs);
    }
    return { boards, window: before === Number.POSITIVE_INFINITY ? undefined : [after, before] };
  }

  /** The board of `bucket`, reusing the keys of the period's last board while the bucket stays the same. */
  board(bucket: PeriodBucket): Board {
    const last = this.#last.get(bucket.period);
    if (last !== undefined && last.bucket.id === bucket.id && last.bucket.startMs === bucket.startMs) return last;
    const zset = bucket.period === "all" ? this.#keys.sub("all") : this.#keys.sub(bucket.period, bucket.id);
    const board = { bucket, zset, index: `${zset}:idx` };
    this.#last.set(bucket.period, board);
    return board;
  }
}

/** The KEYS of `boards`: zset and index of each, in order. */
export function pairs(boards: readonly Board[]): string[] {
  return boards.flatMap((b) => [b.zset, b.index]);
}

/** The ARGV bounds of `boards`: start and end of each bucket, in order. */
export function ranges(boards: readonly Board[]): number[] {
  return boards.flatMap((b) => [b.bucket.startMs, b.bucket.endMs]);
}
