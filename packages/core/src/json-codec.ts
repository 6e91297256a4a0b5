import { InvalidArgumentError } from "./errors.js";
import { faithfulJsonText } from "./json-faithful.js";
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

/**
 * The JSON codec, with the one JSON rule of every default codec of Coordis ({@link faithfulJsonText}): stores what
 * JSON stores faithfully (following `toJSON`: a Date comes back as its ISO-8601 string; an object of a class with
 * enumerable fields as a plain object of those fields) and refuses, with a TypeError naming where, what JSON would
 * silently store as something else: NaN/±Infinity, an invalid Date, `undefined`, a function or a symbol in an array
 * (stored as `null`), a Map, a Set or any object of a class without enumerable fields (stored as `{}`), a BigInt, a
 * cycle, and a value with no JSON text (`undefined`, a function, a symbol). A property holding `undefined`, a function
 * or a symbol is left out, as JSON leaves it out. Costs one `JSON.stringify` and one scan of its text unless the text
 * holds `null` or `{}`.
 */
export const jsonCodec: TextCodec = Object.freeze({
  encode(value: unknown): string {
    return faithfulJsonText(value);
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
