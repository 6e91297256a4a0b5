import {
  CoordisError,
  jsonCodec as coreJsonCodec,
  encodeText,
  errorOf,
  InvalidArgumentError,
  type TextCodec,
} from "@coordis/core";

/**
 * Turns cached values into strings and back. `encode` must throw for a value it cannot represent faithfully; the
 * cache reports that as `InvalidArgumentError("value")` before anything is sent to Redis, as it does for text that
 * is not well-formed Unicode (a lone UTF-16 surrogate cannot reach Redis unchanged). `decode` receives exactly what
 * `encode` returned, possibly in another process.
 */
export type CacheCodec = TextCodec<unknown>;

/**
 * The default codec: JSON, with the one JSON rule of every default codec (the JSON codec of `@coordis/core`). Stores
 * what JSON stores faithfully, following `toJSON` (a Date comes back as its ISO-8601 string) and an object of a class
 * with enumerable fields as a plain object of those fields; refuses what JSON would silently store as something else:
 * NaN/±Infinity, an invalid Date, `undefined`, a function or a symbol in an array (`null`), a Map, a Set or an object
 * of a class without enumerable fields (`{}`), a BigInt, a cycle, and `undefined`, a function or a symbol as the value.
 */
export const jsonCodec: CacheCodec = coreJsonCodec;

/**
 * Runs `codec.encode`, turning a failure (or a non-string result) into `InvalidArgumentError(argument)`. Text that
 * is not well-formed Unicode (a lone UTF-16 surrogate, as codecs that pack bytes into code units produce) is refused
 * too: it cannot travel to Redis as UTF-8 unchanged (each lone surrogate becomes U+FFFD), so other replicas would
 * read another value than this one keeps.
 */
export function encodeWith(codec: CacheCodec, value: unknown, argument: string): string {
  const text = encodeText(codec, value, argument, "cannot be cached");
  // JSON.stringify escapes lone surrogates: the default codec's text is always well-formed.
  if (codec !== jsonCodec) assertStorableText(text, argument, "the codec's encode()");
  return text;
}

/**
 * @throws InvalidArgumentError(argument) when `text` holds a lone UTF-16 surrogate: Redis would store it altered
 */
export function assertStorableText(text: string, argument: string, producer: string): void {
  if (!text.isWellFormed()) {
    throw new InvalidArgumentError(
      argument,
      `${producer} returned text with a lone UTF-16 surrogate, which Redis cannot store unchanged (it is sent as ` +
        "UTF-8, where it becomes U+FFFD): encode binary data as base64 or Latin-1 text",
    );
  }
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
