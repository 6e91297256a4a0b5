import { CoordisError, jsonCodec as coreJsonCodec, encodeText, errorOf, type TextCodec } from "@coordis/core";

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

/** What {@link decodeWith} returns for text the codec cannot decode: the codec's error. */
export class Undecodable {
  constructor(readonly error: Error) {}
}

/** Runs `codec.decode`; a failure comes back as an {@link Undecodable}, not thrown. */
export function decodeWith(codec: CacheCodec, text: string): unknown {
  try {
    return codec.decode(text);
  } catch (err) {
    return new Undecodable(errorOf(err));
  }
}

/** The error of a `getOrSet` whose own load could not be decoded (`ERR_CACHE_DECODE`, the codec's error as cause). */
export function undecodableError(namespace: string, k: string, { error }: Undecodable): CoordisError {
  return new CoordisError(
    "ERR_CACHE_DECODE",
    `cache "${namespace}": the codec cannot decode what it encoded for key "${k}" (or another writer keeps storing ` +
      `values it cannot read): ${error.message}. Check that codec.decode(codec.encode(v)) returns v`,
    { cause: error },
  );
}
