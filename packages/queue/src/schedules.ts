import { InvalidArgumentError, validate, validateName } from "@coordis/core";
import { Cron } from "croner";
import { MAX_ID_BYTES, onlyKeys, validateId } from "./options.js";

/**
 * When a schedule runs: every `everyMs` (on a grid aligned to the Unix epoch), or on a cron pattern in time zone `tz`
 * (an IANA zone; UTC when absent, whatever the process's own zone).
 */
export type ScheduleSpec = { everyMs: number } | { cron: string; tz?: string };

/** Shortest `everyMs`: 1 s. */
export const MIN_EVERY_MS = 1_000;

/** A validated schedule timing. */
export type ParsedSpec = { readonly everyMs: number } | { readonly cron: string; readonly tz: string | undefined };

/** What a schedule stores in Redis (JSON): its timing, the job's encoded data and the job's script arguments. */
export interface StoredSchedule {
  readonly spec: ParsedSpec;
  /** The job arguments after the id (see jobArgs). */
  readonly job: readonly (string | number)[];
}

/**
 * Longest schedule name, UTF-8 bytes: the id of a job the schedule makes, `{schedule:<name>}<run time ms>`, must fit
 * in a job id's {@link MAX_ID_BYTES} (256) with room for 16 digits.
 */
export const MAX_SCHEDULE_NAME_BYTES = MAX_ID_BYTES - "{schedule:}".length - 16;

/**
 * Validates the name of a schedule being declared: 1–229 UTF-8 bytes, no braces, no control characters (its jobs'
 * ids hold it). @throws InvalidArgumentError
 */
export function validateScheduleName(name: unknown, argument = "name"): string {
  const value = validateName(name, argument);
  validateId(argument, value);
  if (Buffer.byteLength(value, "utf8") > MAX_SCHEDULE_NAME_BYTES) {
    throw new InvalidArgumentError(
      argument,
      `must be at most ${MAX_SCHEDULE_NAME_BYTES} bytes in UTF-8 (the ids of the jobs it makes hold it)`,
    );
  }
  return value;
}

/**
 * Validates the name of a schedule to remove: as the name of one declared before names were limited to
 * {@link MAX_SCHEDULE_NAME_BYTES} (1–512 bytes, no braces), so such a schedule can still be removed.
 */
export function validateStoredScheduleName(name: unknown, argument = "name"): string {
  return validateName(name, argument);
}

/** Validates `{ everyMs } | { cron, tz? }`. @throws InvalidArgumentError */
export function parseSpec(argument: string, raw: unknown): ParsedSpec {
  const o = validate.options<{ everyMs?: unknown; cron?: unknown; tz?: unknown }>(argument, raw);
  if (raw === undefined) throw new InvalidArgumentError(argument, "expected { everyMs } or { cron, tz? }");
  if (o.everyMs !== undefined) {
    onlyKeys(argument, o, ["everyMs"]);
    return { everyMs: validate.durationMs(`${argument}.everyMs`, o.everyMs, { min: MIN_EVERY_MS }) };
  }
  if (o.cron === undefined) throw new InvalidArgumentError(argument, "expected { everyMs } or { cron, tz? }");
  onlyKeys(argument, o, ["cron", "tz"]);
  const cron = validate.string(`${argument}.cron`, o.cron, { maxBytes: 256 });
  const tz = o.tz === undefined ? undefined : validate.string(`${argument}.tz`, o.tz, { maxBytes: 64 });
  // 5 fields (minute first) or 6 (seconds first), or a nickname (@daily...): croner alone would take 7 (a year).
  const fields = cron.trim().split(/\s+/).length;
  if (!cron.trim().startsWith("@") && fields !== 5 && fields !== 6) {
    throw new InvalidArgumentError(`${argument}.cron`, `expected 5 or 6 fields, got ${fields}`);
  }
  try {
    // Paused and without a function, the Cron object schedules nothing (stop() would also end its nextRun()).
    new Cron(cron, { timezone: tz, paused: true });
  } catch (err) {
    const which = tz !== undefined && /time ?zone/i.test(String(err)) ? "tz" : "cron";
    throw new InvalidArgumentError(`${argument}.${which}`, err instanceof Error ? err.message : String(err));
  }
  if (tz !== undefined) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: tz });
    } catch {
      throw new InvalidArgumentError(`${argument}.tz`, `unknown time zone "${tz}"`);
    }
  }
  return { cron, tz };
}

/** Cron objects are parsed once per pattern and zone. */
const crons = new Map<string, Cron>();

/** The zone of a cron pattern declared without `tz`: the same on every replica, whatever its own time zone. */
export const DEFAULT_CRON_TZ = "UTC";

/**
 * The first run time strictly after `afterMs` (Unix ms, server time), or `null` when a cron pattern never runs again.
 * `everyMs` runs sit on multiples of `everyMs` since the Unix epoch, so every replica computes the same grid; a cron
 * pattern without `tz` is read in {@link DEFAULT_CRON_TZ}, never in the process's local zone (replicas in other zones,
 * or with another `TZ`, would each compute other run times).
 */
export function nextRunAfter(spec: ParsedSpec, afterMs: number): number | null {
  if ("everyMs" in spec) return (Math.floor(afterMs / spec.everyMs) + 1) * spec.everyMs;
  const tz = spec.tz ?? DEFAULT_CRON_TZ;
  const key = `${tz}\n${spec.cron}`;
  let cron = crons.get(key);
  if (cron === undefined) {
    // Paused and without a function it schedules nothing; stop() would make every nextRun() answer null.
    cron = new Cron(spec.cron, { timezone: tz, paused: true });
    if (crons.size >= 1_000) crons.clear();
    crons.set(key, cron);
  }
  return cron.nextRun(new Date(afterMs))?.getTime() ?? null;
}

/** A job's options text as the fire script reads it (lua/_lib/queue-add.lua's qa_options): 8 integers, the group. */
const OPTIONS_TEXT = /^\d+ \d \d+ \d \d+ \d+ \d+ \d+ [\s\S]*$/;

/** Whether a stored timing is one {@link nextRunAfter} can compute with. */
function isStoredSpec(spec: unknown): spec is ParsedSpec {
  if (spec === null || typeof spec !== "object") return false;
  const s = spec as { everyMs?: unknown; cron?: unknown; tz?: unknown };
  if (s.everyMs !== undefined) return Number.isSafeInteger(s.everyMs) && (s.everyMs as number) >= 1;
  return typeof s.cron === "string" && (s.tz === undefined || typeof s.tz === "string");
}

/**
 * Parses a stored schedule; `null` when it is not one this version can fire (written by an incompatible version, or
 * corrupt): not JSON, another shape, a timing without a positive `everyMs` or a `cron` text, or job options the fire
 * script would refuse.
 */
export function parseStored(text: string): StoredSchedule | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (v === null || typeof v !== "object") return null;
  const { spec, job } = v as { spec?: unknown; job?: unknown };
  if (!Array.isArray(job) || job.length !== 10 || !isStoredSpec(spec)) return null;
  if (typeof job[0] !== "string" && typeof job[0] !== "number") return null;
  if (!OPTIONS_TEXT.test(job.slice(1).join(" "))) return null;
  return { spec, job };
}

/** A run time for "never again": far beyond any real one, so the schedule is never due. */
export const NEVER_MS = 8.64e15;
