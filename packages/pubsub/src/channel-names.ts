import { InvalidArgumentError, validate } from "@coordis/core";

/** Longest channel name or pattern, in UTF-8 bytes (before the prefix is added). */
export const MAX_CHANNEL_BYTES = 256;

// Channel names: printable, no whitespace, no glob characters (so a name is never mistaken for a pattern) and no
// braces (so the prefix never turns into a cluster hash tag by accident).
const BAD_CHANNEL = /[\s\p{Cc}*?[\]\\{}]/u;
// Patterns: the same, but glob characters `* ? [ ] \` are allowed.
const BAD_PATTERN = /[\s\p{Cc}{}]/u;

/**
 * Validates a channel name: 1–256 UTF-8 bytes of printable characters without whitespace, `* ? [ ] \ { }`.
 * @throws InvalidArgumentError naming `argument`
 */
export function validateChannel(channel: unknown, argument = "channel"): string {
  const value = validate.string(argument, channel, { minBytes: 1, maxBytes: MAX_CHANNEL_BYTES });
  if (BAD_CHANNEL.test(value)) {
    throw new InvalidArgumentError(
      argument,
      "must not contain whitespace, control characters or any of * ? [ ] \\ { } (use psubscribe for patterns)",
    );
  }
  return value;
}

/**
 * Validates a glob pattern (Redis PSUBSCRIBE syntax): 1–256 UTF-8 bytes without whitespace, control characters or
 * braces.
 * @throws InvalidArgumentError naming `argument`
 */
export function validatePattern(pattern: unknown, argument = "pattern"): string {
  const value = validate.string(argument, pattern, { minBytes: 1, maxBytes: MAX_CHANNEL_BYTES });
  if (BAD_PATTERN.test(value)) {
    throw new InvalidArgumentError(argument, "must not contain whitespace, control characters, { or }");
  }
  return value;
}
