import { validate } from "@coordis/core";
/** A leaderboard period: the all-time board, or calendar buckets that start fresh each day, ISO week or month. */
export type Period = "all" | "daily" | "weekly" | "monthly";

/** Every period name, in a stable order. */
export const PERIODS: readonly Period[] = ["all", "daily", "weekly", "monthly"];

const DAY_MS = 86_400_000;
/**
 * Largest magnitude of an instant (Unix ms) {@link periodBucket} accepts: Dates exist within ±8.64e15 ms of the
 * epoch, less room for the time-zone offset. Also the bound of every `at` a leaderboard call accepts.
 */
export const MAX_PERIOD_MS = 8.6e15;

/** One bucket of a period: the board that collects the submits whose time falls in `[startMs, endMs)`. */
export interface PeriodBucket {
  /** The period. */
  readonly period: Period;
  /**
   * The bucket's id, part of its Redis key: `"all"`, `"2026-11-26"` (daily), `"2026-W48"` (ISO week-year and
   * week), `"2026-11"` (monthly). Dates are local to the leaderboard's time-zone offset. Years have at least 4
   * digits (`"0099-12-31"`), with a leading `-` before year 0 (`"-0001-W52"`).
   */
  readonly id: string;
  /** First millisecond (Unix epoch ms, UTC) of the bucket; `-2^53` for `"all"`. */
  readonly startMs: number;
  /** First millisecond after the bucket; `2^53` for `"all"`. */
  readonly endMs: number;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");
/** A year as at least 4 digits, with a leading "-" before year 0 (ISO 8601 expanded years: "0099", "-0001"). */
const padYear = (year: number) => (year < 0 ? `-${pad(-year, 4)}` : pad(year, 4));

// Calendar arithmetic on day numbers (proleptic Gregorian, any year), after H. Hinnant's days_from_civil and
// civil_from_days. Plain integer arithmetic: no Date, whose UTC constructor maps years 0–99 to 1900–1999.
const DAYS_PER_ERA = 146_097; // 400 years
const EPOCH_SHIFT = 719_468; // days from 0000-03-01 to 1970-01-01

/** Days since 1970-01-01 of a civil date (proleptic Gregorian). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * DAYS_PER_ERA + doe - EPOCH_SHIFT;
}

/** The civil date of a day number (days since 1970-01-01). */
function civil(days: number): { year: number; month: number; day: number } {
  const z = days + EPOCH_SHIFT;
  const era = Math.floor(z / DAYS_PER_ERA);
  const doe = z - era * DAYS_PER_ERA;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day: doy - Math.floor((153 * mp + 2) / 5) + 1 };
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
  validate.integer("atMs", atMs, { min: -MAX_PERIOD_MS, max: MAX_PERIOD_MS });
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
    return bucket(`${padYear(year)}-${pad(month)}-${pad(dom)}`, day, day + 1);
  }
  if (period === "weekly") {
    // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
    const monday = day - ((((day + 3) % 7) + 7) % 7);
    const isoYear = civil(monday + 3).year;
    const week = Math.floor((monday + 3 - daysFromCivil(isoYear, 1, 1)) / 7) + 1;
    return bucket(`${padYear(isoYear)}-W${pad(week)}`, monday, monday + 7);
  }
  const { year, month } = civil(day);
  const next = month === 12 ? daysFromCivil(year + 1, 1, 1) : daysFromCivil(year, month + 1, 1);
  return bucket(`${padYear(year)}-${pad(month)}`, daysFromCivil(year, month, 1), next);
}
