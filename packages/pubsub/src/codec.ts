import { jsonText } from "@coordis/core";

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
 * The default codec: JSON text in UTF-8. Rejects what JSON cannot represent faithfully at the top level
 * (`undefined`, functions, symbols) and what `JSON.stringify` throws on (BigInt, cycles).
 */
export const jsonCodec: Codec = Object.freeze({
  encode: jsonText,
  decode(data: Buffer): unknown {
    return JSON.parse(data.toString("utf8"));
  },
});
