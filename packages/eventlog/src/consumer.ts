import { setTimeout as sleep } from "node:timers/promises";
import {
  blockingRead,
  closeBlockingConnection,
  notifyEvent,
  openBlockingConnection,
  runScript,
  toCoordisError,
  whenReady,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { type ConsumeSettings, parseStopOptions, type StopOptions } from "./consumer-options.js";
import type { GroupHandle } from "./context.js";
import { parseEntry, type RawEntry } from "./entries.js";
import { Handlers } from "./handlers.js";
import { Refresher } from "./refresh.js";
import { eventlogScripts } from "./scripts.generated.js";
import type { ConsumeHandler, ConsumerStats } from "./types.js";

const RETRY_MS = 200;

/** A read's error saying that the group is gone: NOGROUP, or a blocking read ended because the stream was deleted. */
function groupGone(err: unknown): boolean {
  return (
    err instanceof Error &&
    (err.message.startsWith("NOGROUP") || err.message.startsWith("UNBLOCKED the stream key no longer exists"))
  );
}

/**
 * A running consumer of a {@link ConsumerGroup}: reads new entries with XREADGROUP on a connection of its own,
 * runs the handler (up to `concurrency` at once), XACKs after success, reclaims entries idle longer than
 * `claimIdleMs` (from consumers that died or stalled, or its own failures) with XPENDING and XCLAIM, and
 * dead-letters entries past `maxDeliveries`, naming the consumer that held them. Redis errors are reported to the
 * observer and retried; the loop never stops by itself.
 *
 * Reads and claims take turns in one loop, each asking only for the free handler slots, so every entry received
 * starts at once: none waits in this consumer while its idle time runs in Redis. The loop waits for a free slot
 * while every slot is taken; whatever frees one (a handler settling, an XACK answered) or `stop()` wakes it.
 *
 * Redelivery: an entry is delivered to another consumer (or again to this one) only when its handler failed (after
 * `claimIdleMs`), or when its consumer did not refresh it for `claimIdleMs`: it died, its event loop was blocked, or
 * it could not reach Redis for that long. While this consumer holds an entry (its handler runs, or its XACK is on
 * its way), it resets the entry's idle time in Redis once the entry has been held a third of `claimIdleMs` since its
 * delivery or last refresh (checked every `claimIdleMs / 6`; one script for every such entry: XCLAIM ... JUSTID to
 * itself, which leaves the delivery count alone). Handlers shorter than a third of `claimIdleMs` cost no refresh. A
 * handler that never settles keeps its entry until its consumer stops or dies.
 *
 * Acknowledgements are coalesced: the entries whose handlers succeeded in one event-loop turn are acknowledged by
 * one XACK sent at the end of that turn (`setImmediate`), never before their handler succeeded. A failed handler's
 * entry is never acknowledged (it stays pending, or is dead-lettered). A handler's slot is freed when it settles,
 * but entries waiting for their XACK (queued or sent, not answered) beyond `concurrency` take handler slots, so at
 * most `2 × concurrency` entries are held at once (running or awaiting their XACK), however slow XACKs are.
 */
export class Consumer<T = unknown> {
  readonly #group: GroupHandle;
  readonly #settings: ConsumeSettings;
  readonly #stopper = new AbortController();
  readonly #held: Refresher;
  readonly #handlers: Handlers<T>;
  #conn: Redis | Cluster | undefined;
  readonly #loops: Promise<void>;
  #stopped: Promise<void> | undefined;

  /** @internal use {@link ConsumerGroup.consume}: starts consuming at once. */
  constructor(group: GroupHandle, handler: ConsumeHandler<T>, settings: ConsumeSettings) {
    this.#group = group;
    this.#settings = settings;
    const report = (type: string, err: unknown) => this.#report(type, err);
    this.#held = new Refresher(group, settings.claimIdleMs, report);
    this.#handlers = new Handlers<T>(group, handler, settings, this.#held, report);
    this.#loops = this.#loop();
  }

  /** The consumer's name in its group. */
  get name(): string {
    return this.#group.consumer;
  }

  /**
   * Current counters and what the consumer holds right now: `inflight` handlers running (and failed entries being
   * dead-lettered), `queued` entries received whose handler has not started, `acking` entries whose handler
   * succeeded and whose XACK is not answered yet (at most `2 × concurrency` entries are running or acking at once).
   */
  stats(): ConsumerStats & { readonly inflight: number; readonly queued: number; readonly acking: number } {
    return { ...this.#handlers.counters, ...this.#handlers.holding() };
  }

  /**
   * Stops reading and claiming, waits for the current read to return (at most `blockMs`), then drains: every
   * entry already received is handled and, when its handler succeeded, acknowledged (its XACK answered) before
   * this resolves; a failed one is left pending or dead-lettered as usual. Idempotent (the first call's deadline
   * holds).
   *
   * Bounded: it resolves within `timeoutMs` (default {@link DEFAULT_STOP_TIMEOUT_MS}) whatever Redis does (down,
   * partitioned, the client stuck reconnecting) and however long handlers run. At the deadline it closes its own
   * connection (ending a blocking read at once) and stops waiting: handlers still running finish in the background
   * and their entries are acknowledged if Redis answers; no handler starts after it resolved (entries of a read or
   * claim answered later are left pending); any entry not acknowledged stays pending and is delivered again after
   * `claimIdleMs` (at least once, as always).
   * Rejects with InvalidArgumentError for a bad `timeoutMs` (1 ms – 1 day) or an unknown option key, on every call
   * (the consumer then goes on as it was).
   */
  stop(options: StopOptions = {}): Promise<void> {
    // Bad options reject (also on a later call), as every other call of the consumer does.
    let timeoutMs: number;
    try {
      timeoutMs = parseStopOptions(options);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#stopped !== undefined) return this.#stopped;
    const handlers = this.#handlers;
    this.#stopper.abort();
    handlers.changed();
    const drained = (async () => {
      await this.#loops;
      while (handlers.busy()) await handlers.nextChange();
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    this.#stopped = Promise.race([drained, deadline]).then(() => {
      clearTimeout(timer);
      // A read or claim answered from now on starts no handler: the caller was told the consumer stopped.
      handlers.close();
      this.#held.stop();
      void closeBlockingConnection(this.#conn);
    });
    return this.#stopped;
  }

  get #stopping(): boolean {
    return this.#stopper.signal.aborted;
  }

  #report(type: string, err: unknown): void {
    const group = this.#group;
    notifyEvent(group.log.observer, {
      primitive: "eventlog",
      type,
      name: group.log.name,
      attributes: { group: group.name },
      error: toCoordisError(err),
    });
  }

  async #pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.#stopper.signal }).catch(() => {});
  }

  /**
   * Reads and claims, taking turns: a claim when one is due (every `claimIntervalMs`), a read otherwise, blocking
   * no longer than until the next claim is due; each asks only for the free slots, and nothing is sent while there
   * are none.
   */
  async #loop(): Promise<void> {
    const group = this.#group;
    const handlers = this.#handlers;
    const { blockMs, claimIntervalMs } = this.#settings;
    const { stream } = group.log.keys;
    let cursor = "0-0";
    let claimAt = performance.now() + claimIntervalMs;
    while (!this.#stopping) {
      // Read ahead while handlers run, but only for free slots: an entry delivered to this consumer that cannot start
      // would sit here while another consumer of the group could handle it.
      while (!this.#stopping && handlers.room() <= 0) await handlers.nextChange();
      if (this.#stopping) break;
      const now = performance.now();
      if (now >= claimAt) {
        claimAt = now + claimIntervalMs;
        cursor = await this.#claim(cursor);
        continue;
      }
      try {
        await group.create();
        // stop() may have given up waiting meanwhile: open nothing after it.
        if (this.#stopping) break;
        this.#conn ??= openBlockingConnection(group.log.redis, blockMs);
        await whenReady(this.#conn, this.#stopper.signal);
        if (this.#stopping) break;
        const count = handlers.room();
        if (count <= 0) continue;
        const sent = performance.now();
        const reply = (await blockingRead(
          this.#conn,
          this.#conn.xreadgroup(
            "GROUP",
            group.name,
            group.consumer,
            "COUNT",
            count,
            "BLOCK",
            Math.min(blockMs, Math.max(1, Math.ceil(claimAt - sent))),
            "STREAMS",
            stream,
            ">",
          ),
        )) as [string, RawEntry[]][] | null;
        // Entries delivered by this read are ours even when stop() was called meanwhile: the drain handles them.
        const raws = reply?.[0]?.[1];
        if (raws !== undefined && raws.length > 0) {
          for (const raw of raws) handlers.enqueue(parseEntry<T>(raw), 1, sent);
          handlers.pump();
        }
      } catch (err) {
        if (groupGone(err)) await group.recreate().catch(() => {});
        else this.#report("consume-read-error", err);
        await this.#pause(RETRY_MS);
      }
    }
  }

  /** One claim for the free slots, from `cursor` on; returns the cursor of the next one. */
  async #claim(cursor: string): Promise<string> {
    const group = this.#group;
    const { log } = group;
    const handlers = this.#handlers;
    const count = handlers.room();
    if (count <= 0) return cursor;
    try {
      // Entries whose handlers succeeded this turn and whose XACK waits for the end of the turn: acknowledged
      // first, on the same connection, so Redis runs the XACK before the claim and the claim cannot take them
      // back (or dead-letter them) as idle.
      handlers.flushAcks();
      // Likewise the refresh of the entries it holds that are due: after a stall of the event loop longer than
      // claimIdleMs, the claim must not take back (and start again) an entry whose handler still runs here.
      this.#held.refreshDue();
      const sent = performance.now();
      const { claimIdleMs, maxDeliveries } = this.#settings;
      const [next, entries, dead] = await runScript(
        log.redis,
        eventlogScripts.claim,
        [log.keys.stream, log.keys.dlq, log.keys.deadLetterIndex],
        [group.name, group.consumer, claimIdleMs, cursor, count, maxDeliveries],
      );
      handlers.counters.deadLettered += dead;
      let claimed = 0;
      for (const [id, fields, deliveries] of entries) {
        if (handlers.enqueue(parseEntry<T>([id, fields]), deliveries, sent)) claimed++;
      }
      handlers.counters.claimed += claimed;
      handlers.pump();
      if (claimed > 0) {
        notifyEvent(log.observer, {
          primitive: "eventlog",
          type: "claimed",
          name: log.name,
          attributes: { group: group.name, count: claimed },
        });
      }
      return next;
    } catch (err) {
      if (err instanceof Error && err.message.includes("NOGROUP")) await group.recreate().catch(() => {});
      else this.#report("consume-claim-error", err);
      return cursor;
    }
  }
}
