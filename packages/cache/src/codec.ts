import { jsonCodec as coreJsonCodec, encodeText, type TextCodec } from "@coordis/core";

/**
 * Turns cached values into strings and back. `encode` must throw for a value it cannot represent faithfully; the
 * cache reports that as `InvalidArgumentError("value")` before anything is sent to Redis. `decode` receives exactly
 * what `encode` returned, possibly in another process.
 */
export type CacheCodec = TextCodec<unknown>;

/**
 * The default codec: JSON. Accepts strings, finite numbers, booleans, null, plain objects and arrays of those, and
 * Dates (which come back as ISO-8601 strings, as with any JSON API). Rejects everything JSON would change or drop:
 * BigInt, functions, symbols, `undefined` (at the top level or in arrays), NaN/Infinity, class instances such as
 * Map/Set, and cycles. (The JSON codec of `@coordis/core`.)
 */
export const jsonCodec: CacheCodec = coreJsonCodec;

/** Runs `codec.encode`, turning a failure (or a non-string result) into `InvalidArgumentError(argument)`. */
export function encodeWith(codec: CacheCodec, value: unknown, argument: string): string {
  return encodeText(codec, value, argument, "cannot be cached");
}
