import { InvalidArgumentError } from "./errors.js";
import { string } from "./validate.js";

/** Default key prefix of every Coordis primitive. */
export const DEFAULT_PREFIX = "coordis";

/** Longest entity name, in UTF-8 bytes. Keys stay well below Redis' limits and readable in `SCAN` output. */
export const MAX_NAME_BYTES = 512;

const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * Validates a key prefix: 1–64 characters of `A–Z a–z 0–9 . _ : -`, starting with a letter or digit.
 * Braces are excluded so the hash tag of every key is always the entity name.
 * @throws InvalidArgumentError
 */
export function validatePrefix(prefix: unknown, argument = "prefix"): string {
  if (typeof prefix !== "string" || !PREFIX_PATTERN.test(prefix)) {
    throw new InvalidArgumentError(
      argument,
      'must be 1-64 characters of letters, digits, ".", "_", ":" or "-", starting with a letter or digit' +
        (typeof prefix === "string" ? ` (got "${prefix.slice(0, 80)}")` : ""),
    );
  }
  return prefix;
}

/**
 * Validates an entity name (a lock name, a rate-limit key, a leaderboard name...): a non-empty, well-formed
 * Unicode string of at most {@link MAX_NAME_BYTES} UTF-8 bytes without `{` or `}` (it becomes the hash tag).
 * @throws InvalidArgumentError
 */
export function validateName(name: unknown, argument = "name"): string {
  const value = string(argument, name, { minBytes: 1, maxBytes: MAX_NAME_BYTES });
  if (value.includes("{") || value.includes("}")) {
    throw new InvalidArgumentError(argument, 'must not contain "{" or "}" (the name is the key\'s hash tag)');
  }
  return value;
}

/**
 * Builds the Redis keys of one entity. Every key shares the hash tag `{name}`, so a script touching any of them
 * runs in one slot on Redis Cluster: `coordis:lock:{report-job}`, `coordis:lock:{report-job}:fence`.
 *
 * @example
 * const k = entityKeys("coordis", "lock", "report-job");
 * k.base            // "coordis:lock:{report-job}"
 * k.sub("fence")    // "coordis:lock:{report-job}:fence"
 */
export interface EntityKeys {
  /** The entity's hash tag including braces, `{name}`. */
  readonly tag: string;
  /** The entity's main key, `<prefix>:<kind>:{<name>}`. */
  readonly base: string;
  /** A sibling key in the same slot: `<base>:<part>:<part>...`. */
  sub(...parts: string[]): string;
}

/**
 * Returns the key builder for one entity after validating prefix, kind and name.
 * @param prefix key prefix (see {@link validatePrefix})
 * @param kind the primitive, lower-case (`"lock"`, `"rl"`, `"lb"`...)
 * @param name the entity's name (see {@link validateName})
 * @throws InvalidArgumentError
 */
export function entityKeys(prefix: string, kind: string, name: string): EntityKeys {
  const head = keyHead(prefix, kind);
  validateName(name);
  const tag = `{${name}}`;
  const base = head + tag;
  return {
    tag,
    base,
    sub: (...parts: string[]) => (parts.length === 0 ? base : `${base}:${parts.join(":")}`),
  };
}

/**
 * The validated head `<prefix>:<kind>:` that every key of one kind starts with, for primitives whose hash tag is
 * not just an entity name (the cache's `{<namespace>:<key>}`, a pub/sub channel): build it once per instance and
 * append the rest. `entityKeys` uses the same check.
 * @throws InvalidArgumentError for an invalid prefix (argument `prefix`) or kind
 */
export function keyHead(prefix: string, kind: string): string {
  const head = typeof prefix === "string" && typeof kind === "string" ? `${prefix}:${kind}:` : "";
  if (!validHeads.has(head)) {
    validatePrefix(prefix);
    if (typeof kind !== "string" || !KIND_PATTERN.test(kind)) {
      throw new InvalidArgumentError(
        "kind",
        `must be a string matching ${KIND_PATTERN}, got ${typeof kind === "string" ? `"${kind}"` : typeof kind}`,
      );
    }
    // A kind never contains ":", so a head string stands for exactly one valid (prefix, kind) pair.
    if (validHeads.size < MAX_CACHED_HEADS) validHeads.add(head);
  }
  return head;
}

/** `<prefix>:<kind>:` heads already validated (a process uses a handful). */
const validHeads = new Set<string>();
const MAX_CACHED_HEADS = 1024;

/**
 * The hash tag Redis Cluster uses for `key`: the text between the first `{` and the next `}` when that is
 * non-empty, otherwise the whole key (the rule of the Redis Cluster specification).
 */
export function hashTagOf(key: string): string {
  if (typeof key !== "string") throw new InvalidArgumentError("key", `expected a string, got ${typeof key}`);
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** The Redis Cluster slot (0–16383) of `key`: CRC16/XMODEM of its hash tag, modulo 16384. */
export function slotOf(key: string): number {
  const bytes = Buffer.from(hashTagOf(key), "utf8");
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ b) & 0xff] as number);
  return crc % 16384;
}
