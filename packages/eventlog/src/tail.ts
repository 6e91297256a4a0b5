import { setTimeout as sleep } from "node:timers/promises";
import { notifyEvent, toCoordisError, validate } from "@coordis/core";
import { compareIds, type Entry, fieldOf, idBefore, parseEntry, type RawEntry, validateStreamId } from "./entries.js";
import { GapError } from "./errors.js";
import type { EventLog } from "./event-log.js";

/** Options of {@link EventLog.tail}. */
export interface TailOptions {
  /**
   * Where to start: `"end"` (default: only entries appended from now on), `"start"` (the oldest kept entry), or an
   * entry id (entries after it; a {@link GapError} is thrown when some of them were already trimmed).
   */
  from?: string;
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal;
  /** How long one blocking XREAD waits, ms (10–60,000); default 1000. */
  blockMs?: number;
  /** Entries fetched per XREAD (1–1000); default 100. */
  batch?: number;
}

const RETRY_MS = 200;

/** Validates the options now (so bad input fails before any command) and returns the lazy iterable. */
export function tailLog<T>(log: EventLog<T>, options: TailOptions): AsyncIterable<Entry<T>> {
  const opts = validate.options<TailOptions>("options", options);
  const from =
    opts.from === undefined || opts.from === "end" || opts.from === "start"
      ? (opts.from ?? "end")
      : validateStreamId("options.from", opts.from);
  const signal = validate.abortSignal("options.signal", opts.signal);
  const blockMs =
    opts.blockMs === undefined ? 1_000 : validate.durationMs("options.blockMs", opts.blockMs, { min: 10, max: 60_000 });
  const batch = opts.batch === undefined ? 100 : validate.positiveInteger("options.batch", opts.batch, 1_000);
  return { [Symbol.asyncIterator]: () => run(log, from, signal, blockMs, batch) };
}

async function* run<T>(
  log: EventLog<T>,
  from: string,
  signal: AbortSignal | undefined,
  blockMs: number,
  batch: number,
): AsyncGenerator<Entry<T>> {
  const { stream, meta } = log.keys;
  let last: string;
  // Sequence number of `last`, when known: every entry carries one, so a jump means entries were skipped.
  let lastSeq: number | undefined;
  if (from === "end") {
    const [id, seq] = await log.redis.hmget(meta, "last", "seq").catch((err) => {
      throw toCoordisError(err);
    });
    last = id ?? "0-0";
    lastSeq = Number(seq ?? 0);
  } else if (from === "start") {
    last = "0-0";
  } else {
    last = from;
    const [info, at] = await Promise.all([
      log.redis.xinfo("STREAM", stream).catch((err: unknown) => {
        if (err instanceof Error && err.message.includes("no such key")) return null;
        throw toCoordisError(err);
      }),
      log.redis.xrange(stream, from, from).catch((err: unknown) => {
        throw toCoordisError(err);
      }),
    ]);
    const here = (at as RawEntry[])[0];
    if (here !== undefined) {
      // The cursor's entry still exists: its sequence number makes the first read's gap check exact.
      lastSeq = Number(fieldOf(here[1], "s") ?? 0);
    } else if (info !== null) {
      const fields = info as unknown[];
      const first = fields[fields.indexOf("first-entry") + 1] as RawEntry | null;
      const firstSeq = first === null ? 0 : Number(fieldOf(first[1], "s") ?? 0);
      const maxDeleted = String(fields[fields.indexOf("max-deleted-entry-id") + 1] ?? "0-0");
      // The cursor's entry is gone. Trimmed: when ids lie between the cursor and the oldest kept entry, which is not the
      // log's first entry, entries were trimmed past the cursor (conservative: reported even when exactly the
      // cursor's own entry was the last one trimmed). Deleted (XDEL): Redis 7.0 records max-deleted-entry-id.
      const trimmedPast = first !== null && compareIds(idBefore(first[0]), from) > 0 && firstSeq > 1;
      if (trimmedPast || compareIds(maxDeleted, from) > 0) {
        notifyEvent(log.observer, { primitive: "eventlog", type: "tail-gap", name: log.name });
        throw new GapError(from, first === null ? undefined : idBefore(first[0]), undefined);
      }
    }
  }

  const conn = log.blockingConnection(blockMs);
  conn.on("error", () => {});
  const onAbort = () => conn.disconnect();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    while (!signal?.aborted) {
      let reply: [string, RawEntry[]][] | null;
      try {
        reply = (await conn.xread("COUNT", batch, "BLOCK", blockMs, "STREAMS", stream, last)) as
          | [string, RawEntry[]][]
          | null;
      } catch (err) {
        if (signal?.aborted) return;
        notifyEvent(log.observer, {
          primitive: "eventlog",
          type: "tail-error",
          name: log.name,
          error: toCoordisError(err),
        });
        await sleep(RETRY_MS);
        continue;
      }
      for (const raw of reply?.[0]?.[1] ?? []) {
        const entry = parseEntry<T>(raw);
        if (lastSeq !== undefined && entry.seq !== lastSeq + 1) {
          notifyEvent(log.observer, { primitive: "eventlog", type: "tail-gap", name: log.name });
          // A sequence that went backwards (or an entry without one): the log was lost and started over (a Redis
          // restart without persistence, a deleted key), and how many entries were lost with it cannot be known.
          throw new GapError(last, idBefore(entry.id), entry.seq > lastSeq ? entry.seq - lastSeq - 1 : undefined);
        }
        last = entry.id;
        lastSeq = entry.seq;
        yield entry;
        if (signal?.aborted) return;
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    conn.disconnect();
  }
}
