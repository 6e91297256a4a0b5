import { setTimeout as sleep } from "node:timers/promises";
import {
  blockingRead,
  type CoordisError,
  closeBlockingConnection,
  isClosed,
  notifyEvent,
  openBlockingConnection,
  RedisUnavailableError,
  ScriptError,
  toCoordisError,
  onAbort as whenAborted,
  whenReady,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { afterHead, LinkChecker } from "./chain.js";
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
import { GapError, UnverifiedEntryError } from "./errors.js";
import type { TailSettings, UnverifiedMode } from "./options.js";
import { followBefore } from "./reads.js";

const RETRY_MS = 200;

/** The sequence number of an entry appended by EventLog.append (field `s`), or undefined for one without. */
function seqOf(fields: readonly string[]): number | undefined {
  const s = fieldOf(fields, "s");
  return s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : undefined;
}

/**
 * A tail's read that Redis refused (an error reply, not "unavailable"): retrying cannot fix it, so the tail ends with
 * it. WRONGTYPE: a key of the log holds another type (something other than EventLog wrote it, e.g. a SET on the
 * stream key); NOPERM: the ACL user lacks a command. Undefined for what a retry may get past: Redis unreachable or not
 * serving (RedisUnavailableError), or a blocking read ended by CLIENT UNBLOCK (UNBLOCKED).
 */
function refusedRead(log: LogContext, err: unknown): CoordisError | undefined {
  const error = toCoordisError(err);
  if (!(error instanceof ScriptError) || error.redisMessage.startsWith("UNBLOCKED")) return undefined;
  const { stream, meta } = log.keys;
  const fix = error.redisMessage.startsWith("WRONGTYPE")
    ? `a key of the log holds another type than EventLog writes there (something else wrote it): "${stream}" must ` +
      `be a stream and "${meta}" a hash; delete or rename the wrong key, or use a log of another name`
    : error.redisMessage.startsWith("NOPERM")
      ? "the ACL user lacks a command the tail sends (XREAD, XRANGE, XREVRANGE, XINFO STREAM, HMGET); grant what " +
        "aclRules() of @coordis/core lists"
      : "retrying cannot fix it";
  error.message = `the tail of log "${log.name}" ended: Redis refused its read (${error.redisMessage}); ${fix}`;
  return error;
}

/** Rejection of {@link abortable} when the tail is ended. */
const ENDED = Symbol("tail ended");

/** `promise`, or a rejection with {@link ENDED} as soon as `signal` aborts (the promise is left to settle alone). */
function abortable<V>(promise: Promise<V>, signal: AbortSignal): Promise<V> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(ENDED);
  }
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => reject(ENDED);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * A live tail of the log (see {@link EventLog.tail}): a lazy iterable, its options already validated; each iteration
 * reads with blocking XREAD on a connection of its own.
 */
export function tailLog<T>(ctx: LogContext, settings: TailSettings): AsyncIterable<Entry<T>> {
  const { from, signal, blockMs, batch, unverified } = settings;
  return {
    [Symbol.asyncIterator]: (): AsyncIterator<Entry<T>> => {
      // Ended by the caller's signal or by return(): every wait of the iteration gives up at once.
      // The caller's signal, maybe shared by many tails, gets one listener however many (onAbort of @coordis/core).
      const end = new AbortController();
      let stop: (() => void) | undefined;
      if (signal?.aborted) end.abort();
      else if (signal !== undefined) stop = whenAborted(signal, () => end.abort());
      const gen = run<T>(ctx, from, end.signal, blockMs, batch, unverified, () => stop?.());
      return {
        next: () => gen.next(),
        return: (value?: unknown) => {
          end.abort();
          return gen.return(value as undefined);
        },
        throw: (err?: unknown) => {
          end.abort();
          return gen.throw(err);
        },
      };
    },
  };
}

/** Where a tail starts: the cursor, its entry's sequence number when known, and whether the cursor is not in the log. */
interface StartPosition {
  last: string;
  /**
   * Sequence number of `last`, when known: every entry carries one, so a jump means entries were skipped. For an entry
   * something else added (none of its own), that of the nearest entry before it that has one.
   */
  lastSeq: number | undefined;
  /**
   * Resumed from a cursor whose entry is not in the log, and neither retention nor a deletion explains it: the log
   * may have been lost and started over after it (its entries are then all newer than the cursor: ids are server
   * time). The first entry with a sequence number decides: the log's very first one (1), with ids between the cursor
   * and it, means it did.
   */
  cursorUnknown: boolean;
}

/**
 * Reads where a tail from `from` starts. @throws GapError when entries after the cursor were trimmed or deleted;
 * what `main` makes of a failed read (RedisUnavailableError, a refused read's ScriptError)
 */
async function startPosition(
  log: LogContext,
  from: string,
  main: <V>(p: Promise<V>) => Promise<V>,
): Promise<StartPosition> {
  const { stream, meta } = log.keys;
  if (from === "end") {
    const [id, seq] = await main(bounded(log, log.redis.hmget(meta, "last", "seq"), "HMGET"));
    return { last: id ?? "0-0", lastSeq: Number(seq ?? 0), cursorUnknown: false };
  }
  if (from === "start" || compareIds(from, "0-0") === 0) {
    // Nothing lies before 0-0 (no entry has that id): the log from its beginning, whatever retention trimmed.
    return { last: "0-0", lastSeq: undefined, cursorUnknown: false };
  }
  const [info, at] = await main(
    Promise.all([
      bounded(log, log.redis.xinfo("STREAM", stream), "XINFO STREAM").catch((err: unknown) => {
        if (err instanceof Error && err.message.includes("no such key")) return null;
        throw err;
      }),
      bounded(log, log.redis.xrange(stream, from, from), "XRANGE"),
    ]),
  );
  const here = (at as RawEntry[])[0];
  if (here !== undefined) {
    // The cursor's entry still exists: its sequence number makes the first read's gap check exact. One that something
    // else added (a raw XADD) has none: the check goes on from the entry before it, as a running tail's does.
    const seq = seqOf(here[1]);
    return { last: from, lastSeq: seq ?? (await seqBefore(log, from, main)), cursorUnknown: false };
  }
  if (info !== null) {
    const fields = info as unknown[];
    const field = (name: string) => fields[fields.indexOf(name) + 1];
    const first = field("first-entry") as RawEntry | null;
    // Unknown for an entry something else added: it may follow trimmed entries of the log as well.
    const firstSeq = first === null ? undefined : seqOf(first[1]);
    const maxDeleted = String(field("max-deleted-entry-id") ?? "0-0");
    // The cursor's entry is gone. Trimmed: when ids lie between the cursor and the oldest kept entry, which is not
    // the log's first entry, entries were trimmed past the cursor (conservative: reported even when exactly the
    // cursor's own entry was the last one trimmed). Deleted (XDEL): Redis 7.0 records max-deleted-entry-id.
    const trimmedPast = first !== null && compareIds(idBefore(first[0]), from) > 0 && firstSeq !== 1;
    // The first entry after the cursor: the oldest kept one when trimmed, else read when a deletion after the cursor
    // may matter.
    let after: RawEntry | undefined = trimmedPast ? first : undefined;
    let deletedPast = false;
    if (!trimmedPast && compareIds(maxDeleted, from) > 0) {
      after = (
        (await main(bounded(log, log.redis.xrange(stream, `(${from}`, "+", "COUNT", 1), "XRANGE"))) as RawEntry[]
      )[0];
      // A deletion matters unless the entry right after the cursor's id exists: then no entry can have been between
      // them (a GapError's resumeAfter is such a cursor, whatever was deleted further on, which the reads report when
      // they get there).
      deletedPast = after === undefined || after[0] !== idAfter(from);
      const afterSeq = after === undefined ? undefined : seqOf(after[1]);
      if (deletedPast && afterSeq !== undefined) {
        // Nor when the entries around the cursor follow each other (sequence numbers n and n + 1): no entry of the log
        // was ever between them, so the cursor never was one (a time, say) and the deletion lies further on, where the
        // reads report it, once.
        const before = await seqBefore(log, from, main);
        if (before !== undefined && afterSeq === before + 1) {
          return { last: from, lastSeq: before, cursorUnknown: false };
        }
      }
    }
    if (trimmedPast || deletedPast) {
      notifyEvent(log.observer, { primitive: "eventlog", type: "tail-gap", name: log.name });
      // Going on from just before the first entry after the gap; when every entry after the cursor was deleted, from
      // the last id the log ever had: the next entry appended comes after it.
      throw new GapError(
        from,
        after === undefined ? String(field("last-generated-id")) : idBefore(after[0]),
        undefined,
      );
    }
  }
  return { last: from, lastSeq: undefined, cursorUnknown: true };
}

/** How many entries before a cursor {@link seqBefore} reads at first, and at most at a time. */
const WALK_FIRST = 16;
const WALK_MAX = 1024;

/**
 * The sequence number of the nearest entry before `id` that has one (entries something else added have none), or
 * undefined when none has (a tail from "start" checks nothing before its first entry either). One XREVRANGE when an
 * entry with a sequence number lies within the first {@link WALK_FIRST}, further ones (growing) otherwise. Each reads
 * at most as many entries as fit in {@link WALK_PAGE_BYTES} at the largest entry size expected (the log's
 * `maxEventBytes`, or a larger entry read meanwhile), and at least one.
 */
async function seqBefore(
  log: LogContext,
  id: string,
  main: <V>(p: Promise<V>) => Promise<V>,
): Promise<number | undefined> {
  let before = id;
  let largest = log.maxEventBytes + ENTRY_OVERHEAD;
  const fitting = (count: number) => Math.max(1, Math.min(count, Math.floor(WALK_PAGE_BYTES / largest)));
  for (let count = fitting(WALK_FIRST); ; count = fitting(Math.min(count * 2, WALK_MAX))) {
    const raws = (await main(
      bounded(log, log.redis.xrevrange(log.keys.stream, `(${before}`, "-", "COUNT", count), "XREVRANGE"),
    )) as RawEntry[];
    for (const raw of raws) {
      const seq = seqOf(raw[1]);
      if (seq !== undefined) return seq;
      largest = Math.max(largest, entryBytes(raw));
    }
    const oldest = raws.at(-1);
    if (oldest === undefined || raws.length < count) return undefined;
    before = oldest[0];
  }
}

async function* run<T>(
  log: LogContext,
  from: string,
  signal: AbortSignal,
  blockMs: number,
  batch: number,
  unverified: UnverifiedMode,
  cleanup: () => void,
): AsyncGenerator<Entry<T>> {
  const { stream, meta } = log.keys;
  const mode = log.chainMode;
  const checker = mode === undefined ? undefined : new LinkChecker(mode);
  let conn: Redis | Cluster | undefined;
  // Ends a blocking read at once.
  const onAbort = () => void closeBlockingConnection(conn);
  signal.addEventListener("abort", onAbort, { once: true });
  const main = <V>(p: Promise<V>) =>
    abortable(p, signal).catch((err: unknown) => {
      throw err === ENDED ? ENDED : (refusedRead(log, err) ?? toCoordisError(err));
    });
  try {
    // Where the tail starts. Redis unreachable or not serving: tried again, as a running tail's reads are, so a tail
    // started during a blip (a replica booting while Redis fails over) waits for Redis instead of ending.
    let start: StartPosition | undefined;
    while (start === undefined) {
      try {
        start = await startPosition(log, from, main);
      } catch (err) {
        if (err === ENDED || signal.aborted) return;
        const error = err as CoordisError;
        // A client the app closed never comes back: that is an error of the caller's, not an outage to wait out.
        const closed = isClosed(log.redis);
        if (!(error instanceof RedisUnavailableError) || closed) throw err;
        notifyEvent(log.observer, { primitive: "eventlog", type: "tail-error", name: log.name, error });
        await sleep(RETRY_MS, undefined, { signal }).catch(() => {});
        if (signal.aborted) return;
      }
    }
    let { last, lastSeq } = start;
    const { cursorUnknown } = start;
    // The sequence number claimed by changed entries read since the entry of `lastSeq`, when they continue it one by
    // one (see below): the next entry may follow them instead.
    let changedSeq: number | undefined;

    conn = openBlockingConnection(log.redis, blockMs);
    if (signal.aborted) return;
    // Whether the checker knows what precedes the next entry (set up from the entries before the first one read).
    let seeded = false;
    while (!signal.aborted) {
      let raws: RawEntry[];
      let recorded: string | null = null;
      let anchor: string | null = null;
      // Entries of the batch older than the anchor that are still in the stream: not trimmed since they were read.
      let notTrimmed: ReadonlySet<string> | undefined;
      try {
        await whenReady(conn, signal);
        if (signal.aborted) return;
        const reply = (await abortable(
          blockingRead(conn, conn.xread("COUNT", batch, "BLOCK", blockMs, "STREAMS", stream, last)),
          signal,
        )) as [string, RawEntry[]][] | null;
        raws = reply?.[0]?.[1] ?? [];
        const first = raws[0];
        if (checker !== undefined && first !== undefined) {
          // Read after the entries: every entry EventLog.append wrote is at or before the recorded last id.
          const m = await abortable(bounded(log, log.redis.hmget(meta, "last", "anchor"), "HMGET"), signal);
          recorded = m[0] ?? null;
          anchor = m[1] ?? null;
          if (anchor !== null && compareIds(first[0], anchor) < 0) {
            // Retention trimmed past them after the read, unless they are still there: then they are no entries of
            // the log (put back before the anchor, where no id can be added), as a read() would see them.
            const older = (await abortable(
              bounded(log, log.redis.xrange(stream, first[0], idBefore(anchor), "COUNT", batch), "XRANGE"),
              signal,
            )) as RawEntry[];
            notTrimmed = new Set(older.map(([id]) => id));
          }
          if (!seeded) {
            // What precedes the first entry, as a read() of a page starting there sees it: the entries before it, the
            // nearest first, more only while none is a valid link.
            await followBefore(log, checker, first[0], [], true, recorded, (p) => abortable(p, signal));
            seeded = true;
          }
        }
      } catch (err) {
        if (signal.aborted) return;
        // Refused by Redis (a key of another type, a missing ACL permission): every retry would fail alike.
        const refused = refusedRead(log, err);
        notifyEvent(log.observer, {
          primitive: "eventlog",
          type: "tail-error",
          name: log.name,
          error: refused ?? toCoordisError(err),
        });
        if (refused !== undefined) throw refused;
        await sleep(RETRY_MS, undefined, { signal }).catch(() => {});
        continue;
      }
      for (const raw of raws) {
        const entry = parseEntry<T>(raw);
        const verdict = checker?.check(raw[0], raw[1], recorded, anchor, (id) => notTrimmed?.has(id) !== true);
        if (verdict !== undefined && !verdict.own) {
          // Not an entry of the chain: its sequence number proves nothing. A changed one (not after the recorded
          // head) that claims the next sequence number may be a genuine entry whose content was edited: the entry
          // after it may follow it, as the chain check lets it link to its stored hash.
          if (unverified === "reject") throw new UnverifiedEntryError(entry.id, verdict.reason);
          const claimed = seqOf(raw[1]);
          if (lastSeq !== undefined && claimed === (changedSeq ?? lastSeq) + 1 && !afterHead(entry.id, recorded)) {
            changedSeq = claimed;
          }
          last = entry.id;
          if (unverified === "mark") yield { ...entry, verified: false, unverifiedReason: verdict.reason };
          if (signal.aborted) return;
          continue;
        }
        if (checker === undefined && seqOf(raw[1]) === undefined) {
          // A log without a chain checks nothing: an entry something else added (no sequence number) is yielded, as
          // read() returns it. Nothing was skipped: the next entry's sequence number follows the last one's.
          last = entry.id;
          yield entry;
          if (signal.aborted) return;
          continue;
        }
        const skipped =
          lastSeq === undefined
            ? // Resumed from a cursor that is not in the log: a log that begins after it, with ids in between, started
              // over (lost). A GapError's resumeAfter, just before the log's first entry, goes on from there.
              cursorUnknown && entry.seq === 1 && compareIds(idBefore(entry.id), last) > 0
            : entry.seq !== lastSeq + 1 && (changedSeq === undefined || entry.seq !== changedSeq + 1);
        if (skipped) {
          notifyEvent(log.observer, { primitive: "eventlog", type: "tail-gap", name: log.name });
          // A sequence that went backwards (or an entry without one), or a log that began after the cursor: the log
          // was lost and started over (a Redis restart without persistence, a deleted key), and how many entries were
          // lost with it cannot be known.
          const base = changedSeq ?? lastSeq;
          throw new GapError(
            last,
            idBefore(entry.id),
            base !== undefined && entry.seq > base ? entry.seq - base - 1 : undefined,
          );
        }
        last = entry.id;
        lastSeq = entry.seq;
        changedSeq = undefined;
        if (verdict !== undefined) {
          if (unverified === "reject") throw new UnverifiedEntryError(entry.id, verdict.reason);
          if (unverified === "mark") yield { ...entry, verified: false, unverifiedReason: verdict.reason };
        } else {
          yield checker === undefined ? entry : { ...entry, verified: true };
        }
        if (signal.aborted) return;
      }
    }
  } catch (err) {
    if (err === ENDED || signal.aborted) return;
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
    void closeBlockingConnection(conn);
    cleanup();
  }
}
