import type { RedisClient } from "./client.js";
import { warnIfUnsafeClient } from "./client-safety.js";
import { InvalidArgumentError } from "./errors.js";

/**
 * Validation helpers for public boundaries. Each throws {@link InvalidArgumentError} naming the argument,
 * and returns the value narrowed to its type so callers can write `const ttl = durationMs("ttlMs", opts.ttlMs)`.
 * Call them before sending anything to Redis: bad input must never cost a round trip or change state.
 */

/** Longest duration Coordis accepts for any `...Ms` argument: 365 days in milliseconds. */
export const MAX_DURATION_MS = 365 * 24 * 60 * 60 * 1000;

/** A short description of any value for an error message; never throws (an object's own toString is not called). */
export function describeValue(value: unknown): string {
  if (typeof value === "string") return value.length > 40 ? `a string of ${value.length} characters` : `"${value}"`;
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value);
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return type === "object" ? "an object" : `a ${type}`;
}

/**
 * The message of a thrown value for an error text: an Error's message, else its string form. Never throws: a value
 * without a string form (a null-prototype object, a message getter that throws) is described by its type.
 */
export function thrownMessage(err: unknown): string {
  try {
    return err instanceof Error ? err.message : String(err);
  } catch {
    return `${describeValue(err)} without a string form`;
  }
}

/**
 * What a record says about a thrown value (a failed tick's history, a failed job's error): an Error's
 * `name: message`, else the value's string form, cut to `maxChars` characters. Never throws: a value without a string
 * form (a null-prototype object, a message getter that throws) is described by its type.
 */
export function thrownText(err: unknown, maxChars: number): string {
  let text: string;
  try {
    text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  } catch {
    text = `${describeValue(err)} without a string form`;
  }
  if (text.length <= maxChars) return text;
  // Never inside a surrogate pair: half a character is invalid UTF-16, stored by Redis as U+FFFD.
  const code = text.charCodeAt(maxChars - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? maxChars - 1 : maxChars);
}

/** `"a finite number from 1 to 10"`, `"an integer of at least 0"`...: what a number argument must be. */
function numberRange(what: string, bounds: { min?: number | undefined; max?: number | undefined }): string {
  const { min, max } = bounds;
  if (min !== undefined && max !== undefined) return `${what} from ${min} to ${max}`;
  if (min !== undefined) return `${what} of at least ${min}`;
  if (max !== undefined) return `${what} of at most ${max}`;
  return what;
}

/**
 * A finite number (not NaN, not ±Infinity), optionally within `[min, max]`. Whatever is wrong, the message gives the
 * range.
 */
export function finiteNumber(name: string, value: unknown, bounds: { min?: number; max?: number } = {}): number {
  if (
    typeof value !== "number" ||
    !Number.isFinite(value) ||
    (bounds.min !== undefined && value < bounds.min) ||
    (bounds.max !== undefined && value > bounds.max)
  ) {
    throw new InvalidArgumentError(
      name,
      `expected ${numberRange("a finite number", bounds)}, got ${describeValue(value)}`,
    );
  }
  return value;
}

/** An integer (safe integer range), optionally within `[min, max]`. Whatever is wrong, the message gives the range. */
export function integer(name: string, value: unknown, bounds: { min?: number; max?: number } = {}): number {
  if (
    typeof value !== "number" ||
    !Number.isSafeInteger(value) ||
    (bounds.min !== undefined && value < bounds.min) ||
    (bounds.max !== undefined && value > bounds.max)
  ) {
    throw new InvalidArgumentError(name, `expected ${numberRange("an integer", bounds)}, got ${describeValue(value)}`);
  }
  return value;
}

/** An integer ≥ 1, optionally at most `max`. */
export function positiveInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  return integer(name, value, max === Number.MAX_SAFE_INTEGER ? { min: 1 } : { min: 1, max });
}

/**
 * A duration in whole milliseconds within `[min, max]` (defaults: 1 ms to {@link MAX_DURATION_MS}).
 * Fractional, negative, NaN and infinite values are rejected. Whatever is wrong, the message gives the range, and
 * `defaultMs` when given (the value an option takes when left out).
 */
export function durationMs(
  name: string,
  value: unknown,
  bounds: { min?: number; max?: number; defaultMs?: number } = {},
): number {
  const min = bounds.min ?? 1;
  const max = bounds.max ?? MAX_DURATION_MS;
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return value;
  const fallback = bounds.defaultMs === undefined ? "" : ` (default ${bounds.defaultMs})`;
  throw new InvalidArgumentError(
    name,
    `expected whole milliseconds from ${min} to ${max}${fallback}, got ${describeValue(value)}`,
  );
}

/**
 * A string whose UTF-8 size is within `[minBytes, maxBytes]` and which is well-formed Unicode (no lone
 * surrogates: they would be replaced when encoded, so two different strings could name the same key).
 */
export function string(name: string, value: unknown, bounds: { minBytes?: number; maxBytes?: number } = {}): string {
  if (typeof value !== "string") {
    throw new InvalidArgumentError(name, `expected a string, got ${describeValue(value)}`);
  }
  const min = bounds.minBytes ?? 1;
  const max = bounds.maxBytes ?? 1024;
  if (!value.isWellFormed()) {
    throw new InvalidArgumentError(name, "contains a lone UTF-16 surrogate (not valid Unicode)");
  }
  // UTF-8 takes at least one byte and at most three per UTF-16 code unit: most strings need no byte count.
  if (value.length >= min && value.length * 3 <= max) return value;
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes < min) {
    throw new InvalidArgumentError(name, min === 1 ? "must not be empty" : `must be at least ${min} bytes`);
  }
  if (bytes > max) {
    throw new InvalidArgumentError(name, `must be at most ${max} bytes in UTF-8, got ${bytes}`);
  }
  return value;
}

/** One of the listed string values. */
export function oneOf<const T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(
      name,
      `expected one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${describeValue(value)}`,
    );
  }
  return value as T;
}

/** A boolean. */
export function boolean(name: string, value: unknown): boolean {
  if (typeof value !== "boolean")
    throw new InvalidArgumentError(name, `expected true or false, got ${describeValue(value)}`);
  return value;
}

/** Built-in types whose instances are never options objects (see {@link options}). */
const NOT_OPTIONS = [Promise, Date, Map, Set, WeakMap, WeakSet, RegExp] as const;

/**
 * A plain options object (or `undefined`, returned as `{}`); rejects arrays, null and primitives. With `allowed`,
 * the object is checked whole: a key outside the list is rejected as `<name>.<key>` naming the known keys, so a typo
 * (`{ ttl }` for `{ ttlMs }`) never silently becomes a default.
 */
export function options<T extends object>(name: string, value: unknown, allowed?: readonly string[]): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidArgumentError(name, `expected an options object, got ${describeValue(value)}`);
  }
  // Objects with no own keys that would otherwise pass as `{}`: an AbortSignal where options go (redis-semaphore's
  // `acquire(signal)`), a Promise, a Date, a Map or a Set.
  if (value instanceof AbortSignal) {
    throw new InvalidArgumentError(name, "expected an options object, got an AbortSignal: pass it as { signal }");
  }
  for (const type of NOT_OPTIONS) {
    if (value instanceof type) {
      throw new InvalidArgumentError(name, `expected an options object, got a ${type.name}`);
    }
  }
  if (allowed !== undefined) {
    for (const key in value) {
      if (Object.hasOwn(value, key) && !allowed.includes(key)) {
        throw new InvalidArgumentError(
          `${name}.${key}`,
          `unknown option (known: ${allowed.length === 0 ? "none" : allowed.join(", ")})`,
        );
      }
    }
  }
  return value as Partial<T>;
}

/** An `AbortSignal` (or `undefined`). */
export function abortSignal(name: string, value: unknown): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) {
    throw new InvalidArgumentError(name, `expected an AbortSignal, got ${describeValue(value)}`);
  }
  return value;
}

/** A function. */
export function func<T extends (...args: never[]) => unknown>(name: string, value: unknown): T {
  if (typeof value !== "function")
    throw new InvalidArgumentError(name, `expected a function, got ${describeValue(value)}`);
  return value as T;
}

/**
 * An ioredis client (`Redis` or `Cluster`): anything with the `evalsha`/`eval` methods Coordis runs scripts with.
 * Rejects `null`, plain objects and other values at construction time rather than at the first call.
 */
export function redisClient<T>(name: string, value: T): T {
  const v = value as { evalsha?: unknown; eval?: unknown; options?: unknown } | null | undefined;
  if (
    v === null ||
    v === undefined ||
    typeof v !== "object" ||
    typeof v.evalsha !== "function" ||
    typeof v.eval !== "function"
  ) {
    throw new InvalidArgumentError(
      name,
      `expected an ioredis Redis or Cluster client (e.g. from connect()), got ${describeValue(value)}`,
    );
  }
  warnIfUnsafeClient(value as RedisClient);
  return value;
}

/**
 * An observer (or `undefined`): a plain object whose `onOperation` / `onEvent`, when present, are functions.
 * `null`, arrays and primitives are rejected.
 */
export function observer<T>(name: string, value: T): T | undefined {
  if (value === undefined) return undefined;
  const v = value as { onOperation?: unknown; onEvent?: unknown } | null;
  if (v === null || typeof v !== "object" || Array.isArray(v)) {
    throw new InvalidArgumentError(
      name,
      `expected an observer object { onOperation?, onEvent? }, got ${describeValue(value)}`,
    );
  }
  for (const method of ["onOperation", "onEvent"] as const) {
    if (v[method] !== undefined && typeof v[method] !== "function") {
      throw new InvalidArgumentError(`${name}.${method}`, `expected a function, got ${describeValue(v[method])}`);
    }
  }
  return value;
}

/**
 * `value` when it is not `undefined`, validated by `check`; otherwise `fallback`. Unlike `value ?? fallback`, an
 * explicit `null` is rejected by `check` instead of silently meaning "use the default".
 */
export function optional<T, R>(value: T | undefined, fallback: R, check: (v: T) => R): R {
  return value === undefined ? fallback : check(value);
}
