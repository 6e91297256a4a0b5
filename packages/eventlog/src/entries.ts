import { createHash } from "node:crypto";
import { InvalidArgumentError } from "@coordis/core";

/** One event of a log. */
export interface Entry<T = unknown> {
  /** Stream id, `<ms>-<n>`: the cursor for paging and tailing. */
  readonly id: string;
  /** Position in the log: 1 for the first event ever appended, +1 per append (duplicates excluded). */
  readonly seq: number;
  /** Server time of the append, ms since the epoch (the id's first part). */
  readonly timestampMs: number;
  /** The event, decoded from JSON. */
  readonly data: T;
  /** With `chain: true`: this entry's hash (hex SHA-1). */
  readonly hash?: string;
  /** With `chain: true`: the previous entry's hash (40 zeros for the first entry; 64 for a keyed chain). */
  readonly prevHash?: string;
  /** With a keyed chain: the id of the key its MAC was computed with. */
  readonly keyId?: string;
  /**
   * On a chained log, from `read()` and `tail()`: `true` when the entry is a valid link of the chain (its hash or
   * MAC matches, it follows the valid entry before it, and it is not after the recorded head); `false` only with
   * `unverified: "mark"`, with {@link Entry.unverifiedReason}.
   */
  readonly verified?: boolean;
  /** Why the entry is not a valid link (`verified: false`). */
  readonly unverifiedReason?: string;
}

/** The previous-hash of the very first entry of a chained log. */
export const GENESIS_HASH = "0".repeat(40);

const ID_PATTERN = /^(\d{1,20})(?:-(\d{1,20}))?$/;
const MAX_U64 = 2n ** 64n - 1n;

/**
 * Validates a stream id cursor (`<ms>-<n>` or `<ms>`, each part a 64-bit unsigned integer).
 * @throws InvalidArgumentError naming `argument`
 */
export function validateStreamId(argument: string, value: unknown): string {
  const m = typeof value === "string" ? ID_PATTERN.exec(value) : null;
  if (m === null || BigInt(m[1] as string) > MAX_U64 || BigInt(m[2] ?? "0") > MAX_U64) {
    throw new InvalidArgumentError(
      argument,
      `expected a stream id such as "1718000000000-0", got ${
        typeof value === "string" ? JSON.stringify(value.slice(0, 60)) : typeof value
      }`,
    );
  }
  return m[2] === undefined ? `${m[1]}-0` : (value as string);
}

/** Compares two stream ids: negative, zero or positive. */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** The largest stream id smaller than `id` (so that `(` + result` starts exactly at `id`). */
export function idBefore(id: string): string {
  const [ms = "0", seq = "0"] = id.split("-");
  if (BigInt(seq) > 0n) return `${ms}-${BigInt(seq) - 1n}`;
  if (BigInt(ms) === 0n) return "0-0";
  return `${BigInt(ms) - 1n}-${MAX_U64}`;
}

/** The smallest stream id larger than `id`, or `undefined` for the largest id (nothing comes after it). */
export function idAfter(id: string): string | undefined {
  const [ms = "0", seq = "0"] = id.split("-");
  if (BigInt(seq) < MAX_U64) return `${BigInt(ms)}-${BigInt(seq) + 1n}`;
  if (BigInt(ms) < MAX_U64) return `${BigInt(ms) + 1n}-0`;
  return undefined;
}

/** Field value of a flat `[field, value, ...]` stream entry. */
export function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length - 1; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Raw stream entry as ioredis returns it. */
export type RawEntry = [id: string, fields: string[]];

/**
 * Most bytes of entries one page of an internal walk brings back (4 MiB): a page of `verify()`, a tail's reads back
 * to the nearest sequence number. A page's first entry comes whatever its size, so a walk always moves on.
 */
export const WALK_PAGE_BYTES = 4 * 1024 * 1024;

/** An entry's id and fields besides its payload (chain fields, key id, sequence number), at most, with margin. */
export const ENTRY_OVERHEAD = 512;

/** Bytes of an entry as read: its id, field names and values. */
export function entryBytes([id, fields]: RawEntry): number {
  let bytes = Buffer.byteLength(id);
  for (const f of fields) bytes += Buffer.byteLength(f);
  return bytes;
}

/** Turns a raw stream entry into an {@link Entry}; a payload that is not JSON is returned as its raw text. */
export function parseEntry<T>(raw: RawEntry): Entry<T> {
  const [id, fields] = raw;
  const payload = fieldOf(fields, "d") ?? "null";
  let data: unknown;
  try {
    data = JSON.parse(payload);
  } catch {
    data = payload;
  }
  const hash = fieldOf(fields, "h");
  const prevHash = fieldOf(fields, "p");
  const keyId = fieldOf(fields, "k");
  return {
    id,
    seq: Number(fieldOf(fields, "s") ?? 0),
    timestampMs: Number(id.slice(0, id.indexOf("-"))),
    data: data as T,
    ...(hash === undefined ? {} : { hash }),
    ...(prevHash === undefined ? {} : { prevHash }),
    ...(keyId === undefined ? {} : { keyId }),
  };
}

/** The hash the append script computes: sha1(prev \n id \n seq \n payload), hex. */
export function entryHash(prevHash: string, id: string, seq: string, payload: string): string {
  return createHash("sha1").update(`${prevHash}\n${id}\n${seq}\n${payload}`, "utf8").digest("hex");
}
