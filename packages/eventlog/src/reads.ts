import { runScript, toCoordisError } from "@coordis/core";
import { LinkChecker } from "./chain.js";
import { bounded, type LogContext } from "./context.js";
import {
  compareIds,
  ENTRY_OVERHEAD,
  type Entry,
  entryBytes,
  fieldOf,
  idAfter,
  idBefore,
  parseEntry,
  type RawEntry,
  WALK_PAGE_BYTES,
} from "./entries.js";
import { UnverifiedEntryError } from "./errors.js";
import type { ReadSettings, UnverifiedMode } from "./options.js";
import { eventlogScripts } from "./scripts.generated.js";
import type { DeadLetter, ReadPage } from "./types.js";

/** Applies `unverified` to entries of a chained log: valid ones get `verified: true`. */
export function applyVerdicts<T>(
  entries: Entry<T>[],
  verdicts: ReadonlyMap<string, string | undefined>,
  mode: UnverifiedMode,
): Entry<T>[] {
  const out: Entry<T>[] = [];
  for (const e of entries) {
    const reason = verdicts.get(e.id);
    if (reason === undefined) out.push({ ...e, verified: true });
    else if (mode === "reject") throw new UnverifiedEntryError(e.id, reason);
    else if (mode === "mark") out.push({ ...e, verified: false, unverifiedReason: reason });
  }
  return out;
}

/** How many entries before a page (or a tail's first entry) its first entry is checked against, at most. */
export const BEFORE = 16;

/**
 * Puts `checker` where the entries before `id` leave it ({@link LinkChecker.follow}), from `before` (the nearest of
 * them, newest first) and, when `more` says older ones are left and none of `before` is a valid link, the older ones
 * too, up to {@link BEFORE} in all: read here in steps that fit in {@link WALK_PAGE_BYTES} at the largest entry size
 * expected, the first step one entry (in a sound log the nearest entry is the one sought). `wrap` is applied to each
 * read (a tail's abort and error handling).
 */
export async function followBefore(
  ctx: LogContext,
  checker: LinkChecker,
  id: string,
  before: readonly RawEntry[],
  more: boolean,
  last: string | null,
  wrap: <V>(p: Promise<V>) => Promise<V> = (p) => p,
): Promise<void> {
  const got = [...before];
  let largest = ctx.maxEventBytes + ENTRY_OVERHEAD;
  for (const raw of got) largest = Math.max(largest, entryBytes(raw));
  checker.follow(got, last);
  while (more && checker.prev === undefined && got.length < BEFORE) {
    const fit = Math.max(1, Math.floor(WALK_PAGE_BYTES / largest));
    const count = got.length === 0 ? 1 : Math.min(BEFORE - got.length, fit);
    const from = got.at(-1)?.[0] ?? id;
    const raws = (await wrap(
      bounded(ctx, ctx.redis.xrevrange(ctx.keys.stream, `(${from}`, "-", "COUNT", count), "XREVRANGE"),
    )) as RawEntry[];
    for (const raw of raws) largest = Math.max(largest, entryBytes(raw));
    got.push(...raws);
    more = raws.length === count;
    checker.follow(got, last);
  }
}

/**
 * Checks a page's links, oldest first, going on from what the entries before it (`before`, newest first, and older
 * ones when `more` says so: up to 16) leave: the nearest valid one, and a changed entry after it that the page's first
 * entry may link to. Returns each entry's verdict (undefined = a valid link).
 */
async function checkLinks(
  ctx: LogContext,
  page: readonly RawEntry[],
  before: readonly RawEntry[],
  more: boolean,
  last: string | null,
  anchor: string | null,
): Promise<Map<string, string | undefined>> {
  const mode = ctx.chainMode;
  const first = page[0];
  if (mode === undefined || first === undefined) return new Map();
  const checker = new LinkChecker(mode);
  await followBefore(ctx, checker, first[0], before, more, last);
  const verdicts = new Map<string, string | undefined>();
  for (const [id, fields] of page) verdicts.set(id, checker.check(id, fields, last, anchor)?.reason);
  return verdicts;
}

/**
 * One page between exclusive cursors (see {@link EventLog.read}); a chained log's page is read with what checking
 * its links needs in one script, and each entry gets its verdict.
 */
export async function readPage<T>(ctx: LogContext, opts: ReadSettings): Promise<ReadPage<T>> {
  const { after, before, limit, reverse } = opts;
  // Exclusive cursors become inclusive bounds: nothing lies after the largest id or before 0-0 (Redis would reject
  // an exclusive range from or to those).
  const low = after === undefined ? "-" : idAfter(after);
  const high = before === undefined ? "+" : compareIds(before, "0-0") === 0 ? undefined : idBefore(before);
  if (low === undefined || high === undefined || (low !== "-" && high !== "+" && compareIds(low, high) > 0)) {
    return { entries: [] };
  }
  const { stream, meta } = ctx.keys;
  let raw: RawEntry[];
  let verdicts: Map<string, string | undefined> | undefined;
  if (ctx.chainMode !== undefined) {
    const [last, anchor, page, earlier, more] = await runScript(
      ctx.redis,
      eventlogScripts.readChained,
      [stream, meta],
      [reverse ? 1 : 0, low, high, limit + 1, WALK_PAGE_BYTES, ctx.maxEventBytes + ENTRY_OVERHEAD],
    );
    raw = page;
    verdicts = await checkLinks(ctx, reverse ? [...page].reverse() : page, earlier, more === 1, last, anchor);
  } else {
    raw = (
      reverse
        ? await bounded(ctx, ctx.redis.xrevrange(stream, high, low, "COUNT", limit + 1), "XREVRANGE")
        : await bounded(ctx, ctx.redis.xrange(stream, low, high, "COUNT", limit + 1), "XRANGE")
    ) as RawEntry[];
  }
  let entries = raw.slice(0, limit).map((r) => parseEntry<T>(r));
  const cursor = entries.at(-1)?.id;
  if (verdicts !== undefined) entries = applyVerdicts(entries, verdicts, opts.unverified);
  return raw.length > limit && cursor !== undefined ? { entries, next: cursor } : { entries };
}

/** Number of entries currently kept. */
export async function length(ctx: LogContext): Promise<number> {
  try {
    return await bounded(ctx, ctx.redis.xlen(ctx.keys.stream), "XLEN");
  } catch (err) {
    throw toCoordisError(err);
  }
}

/** The latest entry's id, sequence number and (chained logs) hash, from the meta hash. */
export async function head(ctx: LogContext): Promise<{ id: string; hash?: string; seq: number } | null> {
  try {
    const [last, hash, seq] = await bounded(ctx, ctx.redis.hmget(ctx.keys.meta, "last", "head", "seq"), "HMGET");
    if (last === null || last === undefined) return null;
    return { id: last, seq: Number(seq ?? 0), ...(hash ? { hash } : {}) };
  } catch (err) {
    throw toCoordisError(err);
  }
}

/** Reads the dead-letter stream, oldest first, after an exclusive cursor. */
export async function deadLetters<T>(
  ctx: LogContext,
  opts: { readonly after: string | undefined; readonly limit: number },
): Promise<DeadLetter<T>[]> {
  // Nothing lies after the largest id (Redis would reject an exclusive range from it).
  const low = opts.after === undefined ? "-" : idAfter(opts.after);
  let raw: RawEntry[] = [];
  try {
    if (low !== undefined) {
      raw = (await bounded(
        ctx,
        ctx.redis.xrange(ctx.keys.dlq, low, "+", "COUNT", opts.limit),
        "XRANGE of the dead-letter stream",
      )) as RawEntry[];
    }
  } catch (err) {
    throw toCoordisError(err);
  }
  return raw.map(([id, fields]) => {
    const d = fieldOf(fields, "d");
    let data: unknown;
    try {
      data = d === undefined || d === "" ? undefined : JSON.parse(d);
    } catch {
      data = d;
    }
    const claimedBy = fieldOf(fields, "claimedBy");
    return {
      id,
      entryId: fieldOf(fields, "id") ?? "",
      group: fieldOf(fields, "group") ?? "",
      consumer: fieldOf(fields, "consumer") ?? "",
      ...(claimedBy === undefined ? {} : { claimedBy }),
      deliveries: Number(fieldOf(fields, "deliveries") ?? 0),
      error: fieldOf(fields, "error") ?? "",
      data: data as T | undefined,
    };
  });
}
