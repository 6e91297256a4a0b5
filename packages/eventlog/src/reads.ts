import { runScript, toCoordisError } from "@coordis/core";
import { LinkChecker } from "./chain.js";
import { bounded, type LogContext } from "./context.js";
import { compareIds, type Entry, fieldOf, idAfter, idBefore, parseEntry, type RawEntry } from "./entries.js";
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

/**
 * Checks a page's links, oldest first, going on from what the entries before it (`before`, newest first: up to 16)
 * leave: the nearest valid one, and a changed entry after it that the page's first entry may link to. Returns each
 * entry's verdict (undefined = a valid link).
 */
function checkLinks(
  ctx: LogContext,
  page: readonly RawEntry[],
  before: readonly RawEntry[],
  last: string | null,
  anchor: string | null,
): Map<string, string | undefined> {
  const mode = ctx.chainMode;
  if (mode === undefined) return new Map();
  const checker = new LinkChecker(mode);
  checker.follow(before, last);
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
    const [last, anchor, page, earlier] = await runScript(
      ctx.redis,
      eventlogScripts.readChained,
      [stream, meta],
      [reverse ? 1 : 0, low, high, limit + 1],
    );
    raw = page;
    verdicts = checkLinks(ctx, reverse ? [...page].reverse() : page, earlier, last, anchor);
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
