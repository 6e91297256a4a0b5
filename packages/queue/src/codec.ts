import { encodeText, InvalidArgumentError, validate } from "@coordis/core";

/** Turns job data (or results) into the strings stored in Redis and back. */
export interface Codec<T> {
  /** Encodes a value; throwing rejects the add (or fails the job, for a result) with that error. */
  encode(value: T): string;
  /** Decodes what `encode` produced. */
  decode(text: string): T;
}

/** The default codec: JSON, with `undefined` stored as the empty string. */
export const jsonCodec: Codec<unknown> = Object.freeze({
  encode: (value: unknown) => {
    if (value === undefined) return "";
    const text = JSON.stringify(value);
    if (typeof text !== "string") throw new TypeError(`a ${typeof value} has no JSON form`);
    return text;
  },
  decode: (text: string) => (text === "" ? undefined : JSON.parse(text)),
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
  // UTF-8 takes at most 3 bytes per UTF-16 unit: most payloads need no byte count.
  if (text.length * 3 > maxBytes && Buffer.byteLength(text, "utf8") > maxBytes) {
    throw new InvalidArgumentError(argument, `is larger than ${maxBytes} bytes once encoded`);
  }
  return text;
}
