import { validate } from "@coordis/core";
/** A leaderboard period: the all-time board, or calendar buckets that start fresh each day, ISO week or month. */
export type Period = "all" | "daily" | "weekly" | "monthly";

/** Every period name, in a stable order. */
export const PERIODS: readonly Period[] = ["all", "daily", "weekly", "monthly"];

const DAY_MS = 86_400_000;

/** One bucket of a period: the board that collects the submits whose time falls in `[startMs, endMs)`. */
export interface PeriodBucket {
  /** The period. */
  readonly period: Period;
  /**
   * The bucket's id, part of its Redis key: `"all"`, `"2026-11-26"` (daily), `"2026-W48"` (ISO week-year and
   * week), `"2026-11"` (monthly). Dates are local to the leaderboard's time-zone offset.
   */
  readonly id: string;
  /** First millisecond (Unix epoch ms, UTC) of the bucket; `-2^53` for `"all"`. */
  readonly startMs: number;
  /** First millisecond after the bucket; `2^53` for `"all"`. */
  readonly endMs: number;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** Days since 1970-01-01 of a civil date (proleptic Gregorian). */
function daysFromCivil(year: number, month: number, day: number): number {
  return Math.floor(Date.UTC(year, month - 1, day) / DAY_MS);
}

function civil(days: number): { year: number; month: number; day: number } {
  const d = new Date(days * DAY_MS);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/**
 * The bucket of `period` that holds the instant `atMs` (Unix epoch milliseconds) for a leaderboard whose day
 * starts at local midnight of UTC+`offsetMinutes`. Days run midnight to midnight, ISO weeks Monday to Sunday
 * (the week belongs to the ISO week-year of its Thursday), months from the 1st. A fixed offset has no daylight
 * saving: pass the offset that suits your players.
 * @throws InvalidArgumentError for an unknown period, a non-integer or out-of-range `atMs` or `offsetMinutes`
 */
export function periodBucket(period: Period, atMs: number, offsetMinutes = 0): PeriodBucket {
  validate.oneOf("period", period, PERIODS);
  // Dates exist within ±8.64e15 ms of the epoch; leave room for the offset.
  validate.integer("atMs", atMs, { min: -8.6e15, max: 8.6e15 });
  validate.integer("offsetMinutes", offsetMinutes, { min: -840, max: 840 });
  if (period === "all") return { period, id: "all", startMs: -(2 ** 53), endMs: 2 ** 53 };
  const offsetMs = offsetMinutes * 60_000;
  const day = Math.floor((atMs + offsetMs) / DAY_MS);
  const bucket = (id: string, firstDay: number, endDay: number): PeriodBucket => ({
    period,
    id,
    startMs: firstDay * DAY_MS - offsetMs,
    endMs: endDay * DAY_MS - offsetMs,
  });
  if (period === "daily") {
    const { year, month, day: dom } = civil(day);
    return bucket(`${pad(year, 4)}-${pad(month)}-${pad(dom)}`, day, day + 1);
  }
  if (period === "weekly") {
    // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
    const monday = day - ((((day + 3) % 7) + 7) % 7);
    const isoYear = civil(monday + 3).year;
    const week = Math.floor((monday + 3 - daysFromCivil(isoYear, 1, 1)) / 7) + 1;
    return bucket(`${pad(isoYear, 4)}-W${pad(week)}`, monday, monday + 7);
  }
  const { year, month } = civil(day);
  const next = month === 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1);
  return bucket(`${pad(year, 4)}-${pad(month)}`, daysFromCivil(year, month, 1), next);
}
