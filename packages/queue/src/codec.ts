import { encodeText, faithfulJsonText, InvalidArgumentError, jsonText, validate } from "@coordis/core";

/** Turns job data (or results) into the strings stored in Redis and back. */
export interface Codec<T> {
  /** Encodes a value; throwing rejects the add (or fails the job, for a result) with that error. */
  encode(value: T): string;
  /** Decodes what `encode` produced. */
  decode(text: string): T;
}

/**
 * The default codec of job data: JSON, `undefined` stored as the empty string, refusing values JSON would change
 * silently or cannot encode (core's one JSON rule, {@link faithfulJsonText}): a Map, a Set or an object of a class without enumerable fields
 * (stored as `{}` by JSON), NaN, ±Infinity and an invalid Date (stored as `null`), a BigInt, a function or a symbol at
 * the top level or in an array, a cycle. Such data rejects the add with an InvalidArgumentError naming `data` (nothing
 * is sent).
 */
export const jsonCodec: Codec<unknown> = Object.freeze({
  encode: (value: unknown) => (value === undefined ? "" : faithfulJsonText(value)),
  decode: (text: string) => (text === "" ? undefined : JSON.parse(text)),
});

/**
 * The default codec of results: JSON with its own rules (NaN stored as `null`, a Map as `{}`), `undefined` stored as
 * the empty string. A result is checked after the job's work is done, when refusing it would end the job dead: only
 * what JSON cannot encode at all (a BigInt, a cycle, a function or a symbol as the result) fails it.
 */
export const jsonResultCodec: Codec<unknown> = Object.freeze({
  encode: (value: unknown) => (value === undefined ? "" : jsonText(value)),
  decode: jsonCodec.decode,
});

/** Validates a `codec` option (or `undefined`). @throws InvalidArgumentError */
export function parseCodec<T>(argument: string, value: unknown): Codec<T> | undefined {
  if (value === undefined) return undefined;
  const c = validate.options<Codec<T>>(argument, value);
  validate.func(`${argument}.encode`, c.encode);
  validate.func(`${argument}.decode`, c.decode);
  return c as Codec<T>;
}

/**
 * Encodes `value` with `codec`, as an argument of a public call: a value the codec cannot encode, or whose encoding
 * is larger than `maxBytes`, is an InvalidArgumentError naming `argument`.
 */
export function encodeArgument<T>(codec: Codec<T>, argument: string, value: T, maxBytes: number): string {
  const text = encodeText(codec, value, argument);
  if (overBytes(text, maxBytes))
    throw new InvalidArgumentError(argument, `is larger than ${maxBytes} bytes once encoded`);
  return text;
}

/** Whether `text` takes more than `maxBytes` bytes in UTF-8 (at most 3 per UTF-16 unit: most texts need no count). */
export function overBytes(text: string, maxBytes: number): boolean {
  return text.length * 3 > maxBytes && Buffer.byteLength(text, "utf8") > maxBytes;
}
