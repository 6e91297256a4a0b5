import { faithfulJsonText } from "@coordis/core";

/**
 * Turns messages into bytes and back. `encode` may throw for a value it cannot represent; Coordis reports that as
 * `InvalidArgumentError("message")` before anything is sent. `decode` may throw for bytes it cannot read; the
 * subscription reports a `handler-error` with `stage: "decode"` and goes on with the next message.
 */
export interface Codec {
  /** Encodes one message. Throw for values that cannot be encoded. */
  encode(value: unknown): string | Buffer;
  /** Decodes the bytes of one message. */
  decode(data: Buffer): unknown;
}

/**
 * The default codec: JSON text in UTF-8, with the one JSON rule of every default codec (core's `faithfulJsonText`).
 * Sends what JSON stores faithfully, following `toJSON` (a Date arrives as its ISO-8601 string) and an object of a
 * class with enumerable fields as a plain object of those fields; refuses what JSON would silently turn into something
 * else: NaN/±Infinity, an invalid Date, `undefined`, a function or a symbol in an array (`null`), a Map, a Set or an
 * object of a class without enumerable fields (`{}`), a BigInt, a cycle, and `undefined`, a function or a symbol as
 * the message. A refused message is an `InvalidArgumentError("message")` naming where (`message.tags is a Set, which
 * JSON stores as {}`), and nothing is sent.
 */
export const jsonCodec: Codec = Object.freeze({
  encode: (value: unknown): string => faithfulJsonText(value, "message"),
  decode(data: Buffer): unknown {
    return JSON.parse(data.toString("utf8"));
  },
});
