import { InvalidArgumentError } from "@coordis/core";

/**
 * Turns cached values into strings and back. `encode` must throw for a value it cannot represent faithfully; the
 * cache reports that as `InvalidArgumentError("value")` before anything is sent to Redis. `decode` receives exactly
 * what `encode` returned, possibly in another process.
 */
export interface CacheCodec {
  /** Encodes one value. Throw for values that cannot be round-tripped. */
  encode(value: unknown): string;
  /** Decodes one encoded value. */
  decode(text: string): unknown;
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
 * The default codec: JSON. Accepts strings, finite numbers, booleans, null, plain objects and arrays of those, and
 * Dates (which come back as ISO-8601 strings, as with any JSON API). Rejects everything JSON would change or drop:
 * BigInt, functions, symbols, `undefined` (at the top level or in arrays), NaN/Infinity, class instances such as
 * Map/Set, and cycles.
 */
export const jsonCodec: CacheCodec = Object.freeze({
  encode(value: unknown): string {
    check(value, "value", new Set());
    return JSON.stringify(value);
  },
  decode(text: string): unknown {
    return JSON.parse(text);
  },
});

/** Runs `codec.encode`, turning a failure (or a non-string result) into `InvalidArgumentError(argument)`. */
export function encodeWith(codec: CacheCodec, value: unknown, argument: string): string {
  let text: unknown;
  try {
    text = codec.encode(value);
  } catch (err) {
    throw new InvalidArgumentError(argument, `cannot be cached: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof text !== "string") throw new InvalidArgumentError(argument, "the codec's encode() must return a string");
  return text;
}
