import {
  Batcher,
  type BatchOutcome,
  CoordisError,
  encodeText,
  errorOf,
  InvalidArgumentError,
  jsonText,
  runScriptDurable,
  runScriptDynamic,
  type TextCodec,
  toCoordisError,
} from "@coordis/core";
import { type ChainMode, entryMac, KEYED_GENESIS_HASH, payloadDigest } from "./chain.js";
import type { LogContext } from "./context.js";
import { IdempotencyConflictError } from "./errors.js";
import type { EventLogSettings } from "./options.js";
import { eventlogScripts } from "./scripts.generated.js";
import type { AppendResult } from "./types.js";

/** An event as JSON.stringify writes it (refusing only what has no JSON text). */
const JSON_TEXT: TextCodec = { encode: jsonText, decode: JSON.parse };

/**
 * How long one keyed append keeps trying while other appenders overtake it, ms. Overtaken, it tries again at once
 * twice, then after a random pause of up to 2, 4, 8 ... 100 ms, so contending appenders spread out instead of
 * failing together (an instance with appends queued appends them back to back, the others wait for a gap).
 */
export const KEYED_CONTENTION_MS = 10_000;
/** Longest pause between two attempts of an overtaken keyed append, ms. */
const KEYED_BACKOFF_MAX_MS = 100;

interface QueuedAppend {
  readonly payload: string;
  readonly idem: string | undefined;
  readonly digest: string;
}

/** The state of a keyed chain an append builds on: as last seen by this instance. */
interface KeyedState {
  last: string | null;
  head: string;
  seq: number;
  /** Server time minus local time, ms (from the last reply: an underestimate, so ids are never in the future). */
  offsetMs: number;
}

type KeyedMode = Extract<ChainMode, { keyed: true }>;

/**
 * The append paths of one log: a plain or SHA-1 chained append (one script, optionally durable), micro-batched
 * appends (one append-batch script per batch) and appends to a keyed chain (MAC computed here, optimistic check in
 * the script, one at a time per instance).
 * @internal
 */
export class Appender {
  readonly #ctx: LogContext;
  readonly #settings: EventLogSettings;
  /** The dedupe key passed (unused) when an append has no idempotency key: `keys.dedupe("")`. */
  readonly #noDedupeKey: string;
  readonly #batcher: Batcher<QueuedAppend, AppendResult> | undefined;
  /** Micro-batches sent and not answered yet: a read waits for them (see {@link Appender.settled}). */
  readonly #sending = new Set<Promise<unknown>>();
  /** Keyed chain: the state the next append builds on, and the tail of the queue that runs appends one at a time. */
  #keyed: KeyedState | undefined;
  #keyedQueue: Promise<unknown> = Promise.resolve();

  constructor(ctx: LogContext, settings: EventLogSettings) {
    this.#ctx = ctx;
    this.#settings = settings;
    this.#noDedupeKey = ctx.keys.dedupe("");
    this.#batcher =
      settings.batch === undefined
        ? undefined
        : new Batcher(settings.batch, (items) => this.#track(this.#sendBatch(items)));
  }

  /** Micro-batching settings, or `undefined` when appends are not batched. */
  get batchSettings(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.#batcher?.settings;
  }

  /**
   * Sends the appends queued by micro-batching now and resolves once every micro-batch sent so far is answered (or
   * failed), so a read sent then sees every earlier append. Sending the read right behind them is not enough: a script
   * call may wait for its turn in the client (behind the first call of a script on that client) or be sent again
   * after NOSCRIPT (a restart emptied the script cache), and a plain command sent meanwhile overtakes it.
   */
  settled(): Promise<void> | undefined {
    this.#batcher?.flush();
    if (this.#sending.size === 0) return undefined;
    return Promise.allSettled(this.#sending).then(() => undefined);
  }

  /** Keeps `sent` in {@link Appender.settled}'s set until it settles. */
  #track<V>(sent: Promise<V>): Promise<V> {
    this.#sending.add(sent);
    const done = () => {
      this.#sending.delete(sent);
    };
    sent.then(done, done);
    return sent;
  }

  /**
   * Encodes `event` as JSON within `maxEventBytes`.
   * @throws InvalidArgumentError naming `event`
   */
  encode(event: unknown): string {
    const text = encodeText(JSON_TEXT, event, "event", "cannot be encoded as JSON");
    const max = this.#settings.maxEventBytes;
    // UTF-8 takes at most three bytes per UTF-16 code unit: short texts need no byte count.
    if (text.length * 3 <= max) return text;
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > max) {
      throw new InvalidArgumentError("event", `encodes to ${bytes} bytes, more than maxEventBytes ${max}`);
    }
    return text;
  }

  /** Appends one encoded event (validated by the caller). */
  async append(payload: string, idem: string | undefined): Promise<AppendResult> {
    // The payload's digest is stored with the idempotency key, so a reuse with another payload is told apart.
    const digest = idem === undefined ? "" : payloadDigest(payload);
    // One group: every key of a log shares its hash tag.
    if (this.#batcher !== undefined) return this.#batcher.add(0, { payload, idem, digest });
    const mode = this.#ctx.chainMode;
    if (mode?.keyed === true) {
      // One keyed append at a time per instance: each builds on the head the previous one left.
      const run = this.#keyedQueue.then(() => this.#appendKeyed(mode, payload, idem, digest));
      this.#keyedQueue = run.catch(() => {});
      return run;
    }
    return this.#appendScript(payload, idem, digest);
  }

  /** One append script call (any chain mode but keyed). */
  async #appendScript(payload: string, idem: string | undefined, digest: string): Promise<AppendResult> {
    const { keys } = this.#ctx;
    const s = this.#settings;
    const { reply, error } = await runScriptDurable(
      this.#ctx.redis,
      eventlogScripts.append,
      [keys.stream, keys.meta, idem === undefined ? this.#noDedupeKey : keys.dedupe(idem)],
      [payload, idem === undefined ? 0 : s.windowMs, digest, this.#mode()],
      s.durability,
    );
    // Appended on the primary, not confirmed on the replicas: it may be lost in a failover. An entry cannot be
    // taken back (the chain links it), so the caller is told; a retry with the same key answers duplicate while the
    // entry survives.
    if (error !== undefined) throw error;
    // Appended: the new id (a string); a duplicate: [first id, 1 or 2].
    if (typeof reply === "string") return { id: reply, duplicate: false };
    const [id, duplicate] = reply;
    return this.#outcome(id, duplicate, idem);
  }

  /**
   * The mode argument of append and append-batch: "0" or "1" (hash-chained), followed by " <maxLen> <maxAgeMs>"
   * when retention is configured.
   */
  #mode(): string {
    const { maxLen, maxAgeMs } = this.#settings;
    const chain = this.#ctx.chainMode === undefined ? "0" : "1";
    return maxLen === 0 && maxAgeMs === 0 ? chain : `${chain} ${maxLen} ${maxAgeMs}`;
  }

  /** An append's result from the script's duplicate flag (0 appended, 1 duplicate, 2 idempotency conflict). */
  #outcome(id: string, duplicate: number, idem: string | undefined): AppendResult {
    if (duplicate !== 2) return { id, duplicate: duplicate === 1 };
    if (this.#settings.conflict === "report") return { id, duplicate: true, conflict: true };
    throw new IdempotencyConflictError(idem ?? "", id);
  }

  /**
   * One append to a keyed chain: the MAC is computed here (the key never reaches Redis) over the head, sequence
   * number and id this instance last saw; the script appends only when they are still current, and otherwise answers
   * the current state, on which the next attempt builds (optimistic: another process appended meanwhile). The first
   * append of an instance learns the state that way (two round trips).
   */
  async #appendKeyed(
    mode: KeyedMode,
    payload: string,
    idem: string | undefined,
    digest: string,
  ): Promise<AppendResult> {
    const { keys } = this.#ctx;
    const s = this.#settings;
    const dedupe = idem === undefined ? this.#noDedupeKey : keys.dedupe(idem);
    const giveUpAt = performance.now() + KEYED_CONTENTION_MS;
    for (let attempt = 0; ; attempt++) {
      if (attempt >= 2) {
        if (performance.now() >= giveUpAt) break;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.random() * Math.min(KEYED_BACKOFF_MAX_MS, 2 ** (attempt - 1))),
        );
      }
      const state = this.#keyed;
      let id = "0-0";
      let prev = "";
      let seq = 0;
      let mac = "";
      if (state !== undefined) {
        const nowMs = Date.now() + state.offsetMs;
        const [lastMs, lastSeq] = state.last === null ? [-1, 0] : state.last.split("-").map(Number);
        id = nowMs > (lastMs as number) ? `${nowMs}-0` : `${lastMs}-${(lastSeq as number) + 1}`;
        prev = state.head;
        seq = state.seq + 1;
        mac = entryMac(mode.key, prev, id, seq, mode.keyId, payload);
      }
      const { reply, error } = await runScriptDurable(
        this.#ctx.redis,
        eventlogScripts.appendKeyed,
        [keys.stream, keys.meta, dedupe],
        [payload, idem === undefined ? 0 : s.windowMs, s.maxLen, s.maxAgeMs, digest, prev, seq, id, mode.keyId, mac],
        s.durability,
      );
      const [replyId, status, now, last, head, lastSeqNo] = reply;
      const offsetMs = Number(now) - Date.now();
      if (status === 3) {
        this.#keyed = {
          last: last === undefined || last === "" || last === null ? null : last,
          head: head === undefined || head === "" || head === null ? KEYED_GENESIS_HASH : head,
          seq: Number(lastSeqNo ?? 0),
          offsetMs,
        };
        continue;
      }
      // Each reply underestimates the offset by its transit time (and a durable append's WAIT): keep the best one.
      if (status === 0)
        this.#keyed = { last: id, head: mac, seq, offsetMs: Math.max(offsetMs, state?.offsetMs ?? offsetMs) };
      if (error !== undefined) throw error;
      return this.#outcome(replyId, status, idem);
    }
    throw new CoordisError(
      "ERR_EVENTLOG_CONTENDED",
      `log "${this.#ctx.name}": for ${KEYED_CONTENTION_MS} ms every keyed append attempt was overtaken by other ` +
        "appenders; append from fewer instances, or to several logs",
    );
  }

  /**
   * Sends one micro-batch of appends as one append-batch script call; each call succeeds or fails on its own. A batch
   * of one (an append alone in its event-loop turn) goes as the plain append script: the same result, less work for
   * Redis.
   */
  async #sendBatch(items: readonly QueuedAppend[]): Promise<BatchOutcome<AppendResult>[]> {
    if (items.length === 1) {
      const { payload, idem, digest } = items[0] as QueuedAppend;
      return [{ ok: true, value: await this.#appendScript(payload, idem, digest) }];
    }
    const { keys } = this.#ctx;
    const s = this.#settings;
    // Only calls with an idempotency key send a dedupe key (in call order); see lua/eventlog/append-batch.lua.
    const scriptKeys: string[] = [keys.stream, keys.meta];
    const args: (string | number)[] = [this.#mode()];
    for (const { payload, idem, digest } of items) {
      if (idem === undefined || s.windowMs === 0) {
        args.push(payload, 0, "");
      } else {
        scriptKeys.push(keys.dedupe(idem));
        args.push(payload, s.windowMs, digest);
      }
    }
    const reply = await runScriptDynamic(this.#ctx.redis, eventlogScripts.appendBatch, scriptKeys, args);
    return reply.map(([ok, id, duplicate], i): BatchOutcome<AppendResult> => {
      // A call's error reply as an unbatched append's would be: a refusal that means "not serving writes right now"
      // (NOREPLICAS, MISCONF, READONLY: nothing was appended) is RedisUnavailableError, not a ScriptError.
      if (ok !== 1) return { ok: false, error: toCoordisError(new Error(id), eventlogScripts.appendBatch.name) };
      try {
        return { ok: true, value: this.#outcome(id, duplicate ?? 0, items[i]?.idem) };
      } catch (err) {
        return { ok: false, error: errorOf(err) };
      }
    });
  }
}
