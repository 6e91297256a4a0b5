import {
  type BatchOptions,
  type BatchSettings,
  batchSettings,
  type CoordisObserver,
  DEFAULT_PREFIX,
  faithfulJsonText,
  InvalidArgumentError,
  validate,
  validatePrefix,
} from "@coordis/core";
import { MAX_PERIOD_MS, PERIODS, type Period } from "./periods.js";

/** How a submit combines a new score with the member's current one. */
export type UpdatePolicy = "best" | "replace" | "increment";
/** `desc`: higher scores rank first (points); `asc`: lower scores rank first (lap times). */
export type Order = "desc" | "asc";

/** Longest member id, in UTF-8 bytes. */
export const MAX_MEMBER_BYTES = 512;
/** Default bound of one member's metadata, in UTF-8 bytes of its JSON. */
export const DEFAULT_META_MAX_BYTES = 1024;
/** Largest `metaMaxBytes` a leaderboard accepts. */
export const MAX_META_BYTES = 64 * 1024;
/** Most entries one `top`/`page` call returns, and most submissions in one `submitMany`. */
export const MAX_BATCH = 1000;
/** Largest `radius` of `around` (the window holds at most `2 × radius + 1` entries). */
export const MAX_RADIUS = 500;
/**
 * Largest magnitude of an `increment` amount and of any score an increment produces: 2^53 − 1
 * (`Number.MAX_SAFE_INTEGER`). Beyond it doubles skip integers, and a sum that passed 2^53 can round back onto it.
 */
export const MAX_INCREMENT_SCORE = Number.MAX_SAFE_INTEGER;
/** Default time a period board lives on after its period ended: 7 days. */
export const DEFAULT_GRACE_MS = 7 * 86_400_000;
/** Default clock disagreement tolerated between this process and Redis: 5 minutes. */
export const DEFAULT_CLOCK_TOLERANCE_MS = 5 * 60_000;

/** Longest `graceMs`: 90 days. */
const MAX_GRACE_MS = 90 * 86_400_000;
/**
 * Latest `at` (Unix ms) of a call: the latest instant whose period buckets exist ({@link MAX_PERIOD_MS}), so an `at`
 * beyond it is rejected here, naming `at`, instead of by the bucket arithmetic once the call is built (where it failed
 * every other call of its micro-batch).
 */
const MAX_AT_MS = MAX_PERIOD_MS;

/** Options of {@link Leaderboard}. All instances that share a name must use the same options. */
export interface LeaderboardOptions {
  /** Rank order; default `"desc"` (highest score first). */
  order?: Order;
  /** Update policy; default `"best"` (keep the better of old and new). */
  update?: UpdatePolicy;
  /** Boards every submit updates, in this order; the first is the default of queries. Default `["all"]`. */
  periods?: readonly Period[];
  /** Tie order on equal scores; only `"earliest-first"`: who reached the score first ranks higher. */
  ties?: "earliest-first";
  /** Offset of the leaderboard's local time from UTC in minutes (−840..840); moves the day boundary. Default 0. */
  timeZoneOffsetMinutes?: number;
  /** How long (ms) a period board lives after its period ended, for late submits and "yesterday" queries. Default 7 days, at most 90 days. */
  graceMs?: number;
  /** Clock disagreement (ms) tolerated between this process and Redis near period boundaries (0..1 h). Default 5 min. */
  clockToleranceMs?: number;
  /** Largest metadata of one member, UTF-8 bytes of its JSON (1..65536). Default 1024. */
  metaMaxBytes?: number;
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
  /** Receives one operation event per call. */
  observer?: CoordisObserver;
  /**
   * Micro-batching of {@link Leaderboard.submit} (off by default): submits issued in the same event-loop turn (or
   * within `maxDelayMs`) go to Redis as one script call, applied in call order, each checked and applied on its
   * own (an error fails only its caller), each caller with its own result. `true` = `{ maxSize: 32,
   * maxDelayMs: 0 }`. See the README's "Micro-batching".
   */
  batch?: boolean | BatchOptions;
}

/** Which board a query reads. */
export interface BoardOptions {
  /** A configured period; default the first configured one. */
  period?: Period;
  /** Read the board of the bucket holding this instant (Unix ms, e.g. yesterday) instead of the current one. */
  at?: number;
}

/** Per-call options of {@link Leaderboard.submit}. */
export interface SubmitOptions<M = unknown> {
  /** Metadata to store for the member (JSON, at most `metaMaxBytes`; replaces the stored one); omitted keeps it. */
  meta?: M;
  /** The event's own time (Unix ms); picks the period buckets. Default Redis server time. */
  at?: number;
}

/** One submission of {@link Leaderboard.submitMany}. */
export interface Submission<M = unknown> {
  /** The member id (1–512 bytes of UTF-8). */
  member: string;
  /** A finite number; with `increment` the amount to add. */
  score: number;
  /** Metadata to store for the member (replaces the stored one); omitted keeps what is stored. */
  meta?: M;
  /** The event's own time (Unix ms); picks the period buckets. Default Redis server time. */
  at?: number;
}

const OPTION_KEYS: readonly (keyof LeaderboardOptions)[] = [
  "order",
  "update",
  "periods",
  "ties",
  "timeZoneOffsetMinutes",
  "graceMs",
  "clockToleranceMs",
  "metaMaxBytes",
  "prefix",
  "observer",
  "batch",
];
const BATCH_KEYS: readonly (keyof BatchOptions)[] = ["maxSize", "maxDelayMs"];
const BOARD_KEYS: readonly (keyof BoardOptions)[] = ["period", "at"];
const SUBMIT_KEYS: readonly (keyof SubmitOptions)[] = ["meta", "at"];
const SUBMISSION_KEYS: readonly (keyof Submission)[] = ["member", "score", "meta", "at"];

/** {@link LeaderboardOptions} after validation, defaults filled in. */
export interface LeaderboardSettings {
  readonly prefix: string;
  readonly order: Order;
  readonly update: UpdatePolicy;
  readonly periods: readonly Period[];
  readonly offsetMinutes: number;
  readonly graceMs: number;
  readonly toleranceMs: number;
  readonly metaMaxBytes: number;
  readonly observer: CoordisObserver | undefined;
  readonly batch: BatchSettings | undefined;
}

/**
 * Validates the options of `new Leaderboard(redis, name, options)` as a whole: unknown keys (also inside `batch`)
 * are rejected too. An explicit `null` is invalid input, never "use the default".
 * @throws InvalidArgumentError naming the option
 */
export function parseLeaderboardOptions(raw: unknown): LeaderboardSettings {
  const o = validate.options<LeaderboardOptions>("options", raw, OPTION_KEYS);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(o.prefix, "options.prefix");
  const order = validate.optional(o.order, "desc" as const, (v) => validate.oneOf("options.order", v, ["desc", "asc"]));
  const update = validate.optional(o.update, "best" as const, (v) =>
    validate.oneOf("options.update", v, ["best", "replace", "increment"]),
  );
  if (o.ties !== undefined) validate.oneOf("options.ties", o.ties, ["earliest-first"]);
  const periods = o.periods === undefined ? (["all"] as const) : parsePeriods(o.periods);
  const offsetMinutes = validate.optional(o.timeZoneOffsetMinutes, 0, (v) =>
    validate.integer("options.timeZoneOffsetMinutes", v, { min: -840, max: 840 }),
  );
  const graceMs = validate.optional(o.graceMs, DEFAULT_GRACE_MS, (v) =>
    validate.durationMs("options.graceMs", v, { max: MAX_GRACE_MS }),
  );
  const toleranceMs = validate.optional(o.clockToleranceMs, DEFAULT_CLOCK_TOLERANCE_MS, (v) =>
    validate.durationMs("options.clockToleranceMs", v, { min: 0, max: 3_600_000 }),
  );
  const metaMaxBytes = validate.optional(o.metaMaxBytes, DEFAULT_META_MAX_BYTES, (v) =>
    validate.integer("options.metaMaxBytes", v, { min: 1, max: MAX_META_BYTES }),
  );
  const observer = validate.observer("options.observer", o.observer);
  if (o.batch !== null && typeof o.batch === "object" && !Array.isArray(o.batch)) {
    validate.options("options.batch", o.batch, BATCH_KEYS);
  }
  const batch = batchSettings("options.batch", o.batch);
  return Object.freeze({
    prefix,
    order,
    update,
    periods: Object.freeze([...periods]),
    offsetMinutes,
    graceMs,
    toleranceMs,
    metaMaxBytes,
    observer,
    batch,
  });
}

function parsePeriods(periods: unknown): readonly Period[] {
  if (!Array.isArray(periods) || periods.length === 0) {
    throw new InvalidArgumentError("options.periods", "expected a non-empty array of periods");
  }
  // Every index, holes included (forEach skips them, and a hole became an undefined period).
  for (let i = 0; i < periods.length; i++) validate.oneOf(`options.periods[${i}]`, periods[i], PERIODS);
  if (new Set(periods).size !== periods.length) {
    throw new InvalidArgumentError("options.periods", "lists a period twice");
  }
  return periods as Period[];
}

/** A query's board: the period (checked against the configured ones) and the instant, if one was named. */
export interface BoardChoice {
  readonly period: Period;
  readonly at: number | undefined;
}

/**
 * Validates the `{ period, at }` of a query as a whole (unknown keys rejected); `period` defaults to the first
 * configured one and must be configured.
 * @throws InvalidArgumentError naming the option
 */
export function parseBoardOptions(raw: unknown, configured: readonly Period[]): BoardChoice {
  const o = validate.options<BoardOptions>("options", raw, BOARD_KEYS);
  const period =
    o.period === undefined ? (configured[0] as Period) : validate.oneOf("options.period", o.period, PERIODS);
  if (!configured.includes(period)) {
    throw new InvalidArgumentError("options.period", `"${period}" is not a configured period of this leaderboard`);
  }
  const at = o.at === undefined ? undefined : validate.integer("options.at", o.at, { min: 0, max: MAX_AT_MS });
  return { period, at };
}

/** A submission after validation: the member, its score (no `-0`), its metadata's JSON (`""`: keep) and its time. */
export interface CheckedSubmission {
  readonly member: string;
  readonly score: number;
  readonly metaJson: string;
  readonly at: number | undefined;
}

/**
 * Validates `submit(member, score, options)`: the arguments and the options object as a whole.
 * @throws InvalidArgumentError naming the argument (`member`, `score`, `meta`, `at`, or `options.<key>` for an unknown key)
 */
export function parseSubmit(
  settings: LeaderboardSettings,
  member: unknown,
  score: unknown,
  options: unknown,
): CheckedSubmission {
  const o = validate.options<SubmitOptions>("options", options, SUBMIT_KEYS);
  return checkSubmission(settings, member, score, o.meta, o.at, "");
}

/**
 * Validates the items of `submitMany(items)`, each as a whole (`items[3].scor` is an unknown key).
 * @throws InvalidArgumentError naming the item and field (`items[3].score`)
 */
export function parseSubmissions(settings: LeaderboardSettings, items: unknown): CheckedSubmission[] {
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH) {
    throw new InvalidArgumentError("items", `expected an array of 1 to ${MAX_BATCH} submissions`);
  }
  // Array.from visits holes too (map skips them and leaves holes for the call to trip over).
  return Array.from(items as unknown[], (raw, i) => {
    if (raw === undefined) throw new InvalidArgumentError(`items[${i}]`, "expected a submission { member, score }");
    const it = validate.options<Submission>(`items[${i}]`, raw, SUBMISSION_KEYS);
    return checkSubmission(settings, it.member, it.score, it.meta, it.at, `items[${i}].`);
  });
}

function checkSubmission(
  settings: LeaderboardSettings,
  member: unknown,
  score: unknown,
  meta: unknown,
  at: unknown,
  path: string,
): CheckedSubmission {
  const id = validate.string(`${path}member`, member, { maxBytes: MAX_MEMBER_BYTES });
  let value = validate.finiteNumber(`${path}score`, score);
  if (settings.update === "increment" && Math.abs(value) > MAX_INCREMENT_SCORE) {
    throw new InvalidArgumentError(`${path}score`, `an increment must lie within ±(2^53 - 1), got ${value}`);
  }
  value += 0; // -0 -> 0
  const metaJson = meta === undefined ? "" : checkMeta(settings, meta, `${path}meta`);
  const when = at === undefined ? undefined : validate.integer(`${path}at`, at, { min: 0, max: MAX_AT_MS });
  return { member: id, score: value, metaJson, at: when };
}

/**
 * `meta` as the JSON stored for a member, through core's one JSON rule (`faithfulJsonText`): a value JSON would
 * silently store as something else (NaN, ±Infinity or an invalid Date as `null`, a Map, a Set or an object of a class
 * without enumerable fields as `{}`, `undefined` in an array as `null`) or cannot encode (a BigInt, a cycle) is
 * refused rather than stored as what every read would then return. `toJSON` is followed (a Date is kept as its ISO
 * string) and an object of a class with enumerable fields is stored as those fields.
 * @throws InvalidArgumentError (`argument`) when it is not such a JSON value or over `metaMaxBytes`
 */
export function checkMeta(settings: LeaderboardSettings, meta: unknown, argument: string): string {
  let metaJson: string;
  try {
    metaJson = faithfulJsonText(meta, argument);
  } catch (err) {
    throw new InvalidArgumentError(
      argument,
      `must be a JSON value that reads back unchanged (${validate.thrownMessage(err)})`,
    );
  }
  const bytes = Buffer.byteLength(metaJson, "utf8");
  if (bytes > settings.metaMaxBytes) {
    throw new InvalidArgumentError(argument, `is ${bytes} bytes of JSON, at most ${settings.metaMaxBytes} allowed`);
  }
  return metaJson;
}
