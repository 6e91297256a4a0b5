import { createHash, createHmac } from "node:crypto";
import { InvalidArgumentError, validate } from "@coordis/core";
import { compareIds, entryHash, fieldOf, GENESIS_HASH, type RawEntry } from "./entries.js";

/** An HMAC key: bytes, or a string taken as its UTF-8 bytes. At least 16 bytes. */
export type ChainKey = Buffer | Uint8Array | string;

/**
 * A keyed chain: every entry's hash is an HMAC-SHA256 under a key only the application holds, so write access to
 * Redis is not enough to forge, insert or rewrite entries that verify.
 */
export interface KeyedChainOptions {
  /** The key new entries are signed with (≥ 16 bytes; 32 random bytes recommended). Never sent to Redis. */
  key: ChainKey;
  /** Its id, stored with every entry (field `k`): 1–64 characters of `A–Z a–z 0–9 . _ -`. */
  keyId: string;
  /** Keys of earlier key ids (after a rotation), by id, to verify the entries they signed. */
  previousKeys?: Record<string, ChainKey>;
}

/** `chain` option of an EventLog: `true` = SHA-1 chain computed in Redis, an object = keyed HMAC-SHA256 chain. */
export type ChainOption = boolean | KeyedChainOptions;

/** The previous-hash of the very first entry of a keyed chain. */
export const KEYED_GENESIS_HASH = "0".repeat(64);

/** How a log's entries are chained. */
export type ChainMode =
  | { readonly keyed: false }
  | { readonly keyed: true; readonly keyId: string; readonly key: Buffer; readonly keys: ReadonlyMap<string, Buffer> };

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

function keyBytes(argument: string, value: unknown): Buffer {
  let bytes: Buffer;
  if (typeof value === "string") bytes = Buffer.from(value, "utf8");
  else if (value instanceof Uint8Array) bytes = Buffer.from(value);
  else throw new InvalidArgumentError(argument, "expected a Buffer or a string");
  if (bytes.length < 16) throw new InvalidArgumentError(argument, `must be at least 16 bytes, got ${bytes.length}`);
  return bytes;
}

function keyId(argument: string, value: unknown): string {
  if (typeof value !== "string" || !KEY_ID.test(value)) {
    throw new InvalidArgumentError(argument, "expected 1–64 characters of A–Z a–z 0–9 . _ -");
  }
  return value;
}

/**
 * Validates the `chain` option.
 * @throws InvalidArgumentError naming `options.chain…`
 */
export function parseChain(value: unknown): ChainMode | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return { keyed: false };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidArgumentError("options.chain", "expected a boolean or { key, keyId, previousKeys? }");
  }
  const opts = validate.options<KeyedChainOptions>("options.chain", value, ["key", "keyId", "previousKeys"]);
  const key = keyBytes("options.chain.key", opts.key);
  const id = keyId("options.chain.keyId", opts.keyId);
  const keys = new Map<string, Buffer>();
  if (opts.previousKeys !== undefined) {
    const prev = opts.previousKeys as unknown;
    if (prev === null || typeof prev !== "object" || Array.isArray(prev)) {
      throw new InvalidArgumentError("options.chain.previousKeys", "expected an object of key id → key");
    }
    for (const [k, v] of Object.entries(prev)) {
      keyId("options.chain.previousKeys", k);
      const bytes = keyBytes(`options.chain.previousKeys.${k}`, v);
      // One key id names one key: the entries signed under it must verify with the key they were signed with.
      if (k === id && !bytes.equals(key)) {
        throw new InvalidArgumentError(
          `options.chain.previousKeys.${k}`,
          `is another key than options.chain.key under the same key id "${id}": one of them would be ignored and the ` +
            "entries signed with it reported as tampered; give the new key a new keyId and keep the old one here",
        );
      }
      keys.set(k, bytes);
    }
  }
  keys.set(id, key);
  return { keyed: true, keyId: id, key, keys };
}

/** The MAC of a keyed entry: hex HMAC-SHA256(key, prev \n id \n seq \n keyId \n payload). */
export function entryMac(key: Buffer, prev: string, id: string, seq: number | string, kid: string, payload: string) {
  return createHmac("sha256", key).update(`${prev}\n${id}\n${seq}\n${kid}\n${payload}`, "utf8").digest("hex");
}

/** Digest of a payload stored with its idempotency key (128 bits of SHA-256, base64url). */
export function payloadDigest(payload: string): string {
  return createHash("sha256").update(payload, "utf8").digest("base64url").slice(0, 22);
}

/** An entry whose own hash (or MAC) matches its content. */
export interface Link {
  readonly id: string;
  readonly hash: string;
  readonly prevHash: string;
  readonly seq: number;
}

/** What an entry is, on its own: a valid link, or why not (with its claimed hash and seq when it has them). */
export type OwnCheck =
  | { readonly ok: true; readonly link: Link }
  | { readonly ok: false; readonly reason: string; readonly claimed?: { hash: string; seq: number } };

/** Checks an entry's own hash or MAC against its content. */
export function checkOwn(mode: ChainMode, id: string, fields: readonly string[]): OwnCheck {
  const p = fieldOf(fields, "p");
  const h = fieldOf(fields, "h");
  const s = fieldOf(fields, "s");
  const d = fieldOf(fields, "d");
  if (p === undefined || h === undefined || s === undefined || d === undefined || !/^\d{1,15}$/.test(s)) {
    return { ok: false, reason: "entry lacks chain fields (not appended by EventLog.append)" };
  }
  const claimed = { hash: h, seq: Number(s) };
  if (mode.keyed) {
    const k = fieldOf(fields, "k");
    if (k === undefined) return { ok: false, reason: "entry is not signed with a chain key", claimed };
    const key = mode.keys.get(k);
    if (key === undefined) return { ok: false, reason: `entry is signed with an unknown key id "${k}"`, claimed };
    if (entryMac(key, p, id, s, k, d) !== h) {
      return { ok: false, reason: "entry content does not match its MAC (changed or forged)", claimed };
    }
  } else if (entryHash(p, id, s, d) !== h) {
    return { ok: false, reason: "entry content does not match its hash (changed)", claimed };
  }
  return { ok: true, link: { id, hash: h, prevHash: p, seq: Number(s) } };
}

/** The previous-hash of a chain's first entry. */
export function genesisOf(mode: ChainMode): string {
  return mode.keyed ? KEYED_GENESIS_HASH : GENESIS_HASH;
}

/** Why `link` does not follow `prev`, or undefined when it does. */
export function linkBreak(link: Link, prev: { hash: string; seq: number }): string | undefined {
  if (link.prevHash !== prev.hash) return "previous-hash does not match the entry before it (inserted or deleted)";
  if (link.seq !== prev.seq + 1) return "sequence gap (an entry before it was deleted)";
  return undefined;
}

/** An entry after the recorded last id was not appended by EventLog.append. */
export function afterHead(id: string, last: string | null): boolean {
  return last === null || compareIds(id, last) > 0;
}

/**
 * Checks entries oldest first, each against the last valid one before it: used by read() and tail(). An entry that
 * is not a valid link is reported and does not become the predecessor of the next one, unless it only broke the
 * link (its own hash is valid: something before it was deleted): then the chain continues from it.
 */
export class LinkChecker {
  /** The last valid link seen, or undefined when the predecessor is not known yet. */
  prev: { hash: string; seq: number } | undefined;
  /** The claimed hash and seq of the last changed entry (already reported): the next may link to it. */
  #alt: { hash: string; seq: number } | undefined;

  constructor(readonly mode: ChainMode) {}

  /**
   * Puts the checker where checking `before` (the entries just before the next one to check, newest first, as
   * XREVRANGE returns them) with the same recorded last id leaves it: the predecessor is the nearest valid link among
   * them, and the newest changed entry after it (already reported) is what the next entry may link to. So an entry
   * gets the same verdict wherever a page, a read or a tail starts. When none of them is a valid link, the next entry
   * is judged as the first of a read (its predecessor missing unless it is the genesis entry or the trim anchor).
   */
  follow(before: readonly RawEntry[], last: string | null): void {
    this.prev = undefined;
    this.#alt = undefined;
    for (const [id, fields] of before) {
      if (afterHead(id, last)) continue;
      const own = checkOwn(this.mode, id, fields);
      if (own.ok) {
        this.prev = { hash: own.link.hash, seq: own.link.seq };
        return;
      }
      this.#alt ??= own.claimed;
    }
  }

  /**
   * @param anchor the trim anchor (the first entry kept by retention), for an entry with no known predecessor
   * @param trimmedSince for a tail, which reads the anchor after its entries: whether an entry older than the anchor
   *   was trimmed since it was read (it was then checked as usual: the oldest entry, or its predecessor was trimmed
   *   first, is taken as the start of the chain). Otherwise (always for a read(), which sees entries and anchor at one
   *   moment) an entry older than the anchor is no entry of the log: retention removed every one of those, and no id
   *   can be added before the last one (it was put back by rewriting the stream), as verify() reports it.
   * @returns undefined for a valid link, or why the entry is not one; `own` is true when the entry itself is genuine
   *   (its hash or MAC matches) and only its link to the one before is broken
   */
  check(
    id: string,
    fields: readonly string[],
    last: string | null,
    anchor: string | null,
    trimmedSince?: (id: string) => boolean,
  ): { readonly reason: string; readonly own: boolean } | undefined {
    if (afterHead(id, last)) {
      return { reason: "entry after the recorded head (not appended by EventLog.append)", own: false };
    }
    const own = checkOwn(this.mode, id, fields);
    if (!own.ok) {
      if (own.claimed !== undefined) this.#alt = own.claimed;
      return { reason: own.reason, own: false };
    }
    if (anchor !== null && compareIds(anchor, id) > 0 && trimmedSince?.(id) !== true) {
      return { reason: "entry before the first entry kept by retention (not appended by EventLog.append)", own: false };
    }
    const { link } = own;
    const prev = this.prev;
    const alt = this.#alt;
    this.prev = { hash: link.hash, seq: link.seq };
    this.#alt = undefined;
    let reason: string | undefined;
    // The anchor starts the kept chain (retention trimmed every entry before it), as verify() takes it, also after an
    // entry before it that is no entry of the log (reported itself).
    if (prev !== undefined) {
      if (id !== anchor) reason = linkBreak(link, prev);
    } else if (
      !(link.prevHash === genesisOf(this.mode) && link.seq === 1) &&
      anchor !== id &&
      // A tail reads the anchor after its entries: retention may have trimmed past this one meanwhile (it was then the
      // oldest entry, or its predecessor was trimmed first).
      !(anchor !== null && compareIds(anchor, id) > 0)
    ) {
      reason = "its predecessor in the chain is missing (deleted)";
    }
    // It follows a changed entry (reported itself): the chain goes on through it.
    if (reason !== undefined && alt !== undefined && linkBreak(link, alt) === undefined) reason = undefined;
    return reason === undefined ? undefined : { reason, own: true };
  }
}
