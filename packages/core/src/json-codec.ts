import { InvalidArgumentError } from "./errors.js";
import * as validate from "./validate.js";

/**
 * Turns values into strings stored in (or sent through) Redis and back. `encode` must throw for a value it cannot
 * represent faithfully; `decode` receives exactly what `encode` returned, possibly in another process.
 */
export interface TextCodec<T = unknown> {
  /** Encodes one value. Throw for values that cannot be round-tripped. */
  encode(value: T): string;
  /** Decodes one encoded value. */
  decode(text: string): T;
}

function check(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`${path} is ${value}, which JSON turns into null`);
      return;
    case "bigint":
      throw new TypeError(`${path} is a BigInt, which JSON cannot encode (convert it to a string)`);
    case "function":
    case "symbol":
      throw new TypeError(`${path} is a ${typeof value}, which JSON would silently drop`);
    case "undefined":
      throw new TypeError(`${path} is undefined, which JSON cannot encode (use null or delete the key)`);
  }
  if (value === null) return;
  const obj = value as object;
  if (obj instanceof Date) {
    if (Number.isNaN(obj.getTime())) throw new TypeError(`${path} is an invalid Date`);
    return; // documented: a Date comes back as its ISO string
  }
  if (seen.has(obj)) throw new TypeError(`${path} is a circular reference`);
  seen.add(obj);
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) check(obj[i], `${path}[${i}]`, seen);
  } else {
    const proto = Object.getPrototypeOf(obj);
    if (proto !== Object.prototype && proto !== null) {
      const name = (obj as { constructor?: { name?: string } }).constructor?.name ?? "object";
      throw new TypeError(`${path} is a ${name}, which JSON does not round-trip (use a plain object or array)`);
    }
    for (const [k, v] of Object.entries(obj)) {
      // JSON drops properties whose value is undefined: the decoded object simply lacks the key.
      if (v !== undefined) check(v, `${path}.${k}`, seen);
    }
  }
  seen.delete(obj);
}

/**
 * The JSON codec: accepts strings, finite numbers, booleans, null, plain objects and arrays of those, and Dates
 * (which come back as ISO-8601 strings, as with any JSON API). Rejects the values JSON would change or drop: BigInt,
 * functions, symbols, `undefined` (at the top level or in arrays), NaN/Infinity, class instances such as Map/Set,
 * and cycles. What it does not look for, as JSON: `-0` comes back as `0`, and only own enumerable string-keyed
 * properties are kept (symbol-keyed or non-enumerable properties, and properties added to an array, are not stored).
 */
export const jsonCodec: TextCodec = Object.freeze({
  encode(value: unknown): string {
    check(value, "value", new Set());
    return JSON.stringify(value);
  },
  decode(text: string): unknown {
    return JSON.parse(text);
  },
});

/**
 * `JSON.stringify(value)` as it is (NaN becomes null, class instances their enumerable fields), refusing only a
 * value that has no JSON text at all (`undefined`, a function, a symbol) and what `JSON.stringify` throws on (BigInt,
 * cycles). For codecs that keep JSON's own lenient rules; {@link jsonCodec} is the strict one.
 * @throws TypeError
 */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`a ${typeof value} cannot be encoded as JSON`);
  return text;
}

/**
 * Validates a `codec` option: `undefined` (returned as `fallback`) or an object with `encode` and `decode`
 * functions.
 * @throws InvalidArgumentError naming `argument` (or `argument.encode` / `argument.decode`)
 */
export function parseCodec<C extends { encode: unknown; decode: unknown }>(
  argument: string,
  value: unknown,
  fallback: C,
): C {
  if (value === undefined) return fallback;
  if (value === null || typeof value !== "object") {
    throw new InvalidArgumentError(argument, "expected an object with encode() and decode()");
  }
  const codec = value as C;
  validate.func(`${argument}.encode`, codec.encode);
  validate.func(`${argument}.decode`, codec.decode);
  return codec;
}

/**
 * Runs `codec.encode(value)` for a public call's argument: a failure, or a result that is not a string, is an
 * {@link InvalidArgumentError} naming `argument` (thrown before anything is sent), its message starting with
 * `failure`.
 */
export function encodeText<T>(codec: TextCodec<T>, value: T, argument: string, failure = "cannot be encoded"): string {
  let text: unknown;
  try {
    text = codec.encode(value);
  } catch (err) {
    throw new InvalidArgumentError(argument, `${failure}: ${validate.thrownMessage(err)}`);
  }
  if (typeof text !== "string") throw new InvalidArgumentError(argument, "the codec's encode() must return a string");
  return text;
}
