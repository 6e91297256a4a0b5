import { setTimeout as sleep } from "node:timers/promises";
import { notifyEvent, notifyOperation, runScript, runScriptDynamic, toCoordisError, validate } from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import type { ConsumerGroup } from "./consumer-group.js";
import { type Entry, parseEntry, type RawEntry } from "./entries.js";
import { eventlogScripts } from "./scripts.generated.js";

/** What a handler learns besides the entry. */
export interface ConsumeContext {
  /** How many times this entry has been delivered to the group, this delivery included (1 = first). */
  readonly deliveries: number;
}

/**
 * Processes one entry. Resolve to acknowledge it; throw (or reject) to leave it pending, so it is delivered again
 * after `claimIdleMs`, until `maxDeliveries` is reached and it goes to the dead-letter stream.
 */
export type ConsumeHandler<T> = (entry: Entry<T>, context: ConsumeContext) => void | Promise<void>;

/** Options of {@link ConsumerGroup.consume}. */
export interface ConsumeOptions {
  /**
   * Handlers running at once in this consumer (1–1000); default 1. It also bounds what the consumer holds: a read or
   * claim asks only for free slots (reads and claims take turns, so they never bring more than can start), and at
   * most `concurrency` entries await their XACK without taking a slot, so at most `2 × concurrency` entries are
   * running or awaiting their XACK. Synchronous or very short handlers gain from a higher value: each read can then
   * bring more entries (it costs them nothing else).
   */
  concurrency?: number;
  /**
   * Entries left pending this long (ms, 10 ms – 1 day) are reclaimed from their consumer; default 30,000. A live
   * consumer keeps the entries it holds (running, or awaiting their XACK) from getting this old: see
   * {@link Consumer}. So an entry is reclaimed when its handler failed, or when its consumer died or could not reach
   * Redis for about this long.
   */
  claimIdleMs?: number;
  /** Deliveries before an entry is dead-lettered (1–1000); default 5. */
  maxDeliveries?: number;
  /**
   * Most entries fetched per read or claim (1–1000); default 10. A read or claim asks for no more entries than there
   * are free handler slots, and reads and claims take turns, so every entry received starts at once instead of
   * waiting in this consumer while other consumers of the group could take it. The next read is sent as soon as a
   * slot is free, while other handlers still run.
   */
  batch?: number;
  /**
   * How long one blocking XREADGROUP waits, ms (10–60,000); default 1000. A read blocks no longer than until the
   * next claim is due. `stop()` takes at most this long.
   */
  blockMs?: number;
  /**
   * How often pending entries are checked for reclaiming, ms; default `claimIdleMs / 2` (10 ms – 5 s). A claim runs
   * between reads, when a handler slot is free.
   */
  claimIntervalMs?: number;
}

/** Counters of a running {@link Consumer}. */
export interface ConsumerStats {
  /**
   * Entries acknowledged by this consumer's XACKs after a successful handler (as XACK replies: an entry that was no
   * longer pending, acknowledged meanwhile by another consumer that reclaimed it, is not counted).
   */
  readonly acked: number;
  /** Handler failures (entries left pending or dead-lettered). */
  readonly failed: number;
  /** Entries this consumer moved to the dead-letter stream. */
  readonly deadLettered: number;
  /** Entries reclaimed from idle consumers (including itself). */
  readonly claimed: number;
}

const RETRY_MS = 200;
/** Default deadline of {@link Consumer.stop}, ms. */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** Most ids one XACK carries: a turn that handled more entries sends several. */
const MAX_ACK_IDS = 1_000;

/** What a handler returned, when it is not a plain value: settled through `Promise.resolve`. */
function isObjectLike(value: unknown): value is object {
  return value !== null && (typeof value === "object" || typeof value === "function");
}

/** One received entry on its way through the consumer. */
interface Job<T> {
  readonly entry: Entry<T>;
  readonly deliveries: number;
  /** `performance.now()` when its handler started; measured only when an observer wants operations. */
  started: number;
  /**
   * `performance.now()` when the command that delivered it (read or claim), or its last refresh, was sent: its idle
   * time in Redis is at most the time since.
   */
  fresh: number;
}

/**
 * A running consumer of a {@link ConsumerGroup}: reads new entries with XREADGROUP on a connection of its own,
 * runs the handler (up to `concurrency` at once), XACKs after success, reclaims entries idle longer than
 * `claimIdleMs` (from consumers that died, or its own failures) with XAUTOCLAIM, and dead-letters entries past
 * `maxDeliveries`. Redis errors are reported to the observer and retried; the loop never stops by itself.
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
  private readonly concurrency: number;
  private readonly claimIdleMs: number;
  private readonly maxDeliveries: number;
  private readonly batch: number;
  private readonly blockMs: number;
  private readonly claimIntervalMs: number;
  /** Received entries not started yet: `queue[head]` is the next one (a plain array with a moving head). */
  private queue: Job<T>[] = [];
  private head = 0;
  /** Resolvers of the waits for the next change of state; see {@link Consumer.changed}. */
  private waiters: Array<() => void> = [];
  private readonly stopper = new AbortController();
  /** Whether operations are timed and reported (the observer is fixed when the log is built). */
  private readonly observed: boolean;
  private inflight = 0;
  private pumping = false;
  /** Succeeded entries waiting for the end of this turn's XACK. */
  private acks: Job<T>[] = [];
  private ackTimer: NodeJS.Immediate | undefined;
  /** Succeeded entries whose XACK was sent and not answered yet. */
  private ackInflight = 0;
  /** Entries awaiting their XACK (queued or sent) that take no handler slot; see {@link Consumer.occupied}. */
  private readonly ackAllowance: number;
  /** Entries delivered to this consumer that it still holds: queued, running, or awaiting their XACK. */
  private readonly held = new Set<Job<T>>();
  /** An entry held this long since it was fresh is refreshed, ms. */
  private readonly refreshAfterMs: number;
  /** How often held entries are checked for a refresh, ms. */
  private readonly refreshEveryMs: number;
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshing = false;
  private readonly flushAcksNow = () => this.flushAcks();
  private readonly refreshNow = () => {
    this.refreshTimer = undefined;
    this.refresh();
    this.scheduleRefresh();
  };
  private conn: Redis | Cluster | undefined;
  private loops: Promise<unknown> | undefined;
  private stopped: Promise<void> | undefined;
  /** stop() resolved: nothing is scheduled any more. */
  private closed = false;
  private counters = { acked: 0, failed: 0, deadLettered: 0, claimed: 0 };

  /** @internal use {@link ConsumerGroup.consume} */
  constructor(
    private readonly group: ConsumerGroup<T>,
    private readonly handler: ConsumeHandler<T>,
    options: ConsumeOptions,
  ) {
    const opts = validate.options<ConsumeOptions>("options", options);
    this.concurrency =
      opts.concurrency === undefined ? 1 : validate.positiveInteger("options.concurrency", opts.concurrency, 1_000);
    this.claimIdleMs =
      opts.claimIdleMs === undefined
        ? 30_000
        : validate.durationMs("options.claimIdleMs", opts.claimIdleMs, { min: 10, max: 86_400_000 });
    this.maxDeliveries =
      opts.maxDeliveries === undefined
        ? 5
        : validate.positiveInteger("options.maxDeliveries", opts.maxDeliveries, 1_000);
    this.batch = opts.batch === undefined ? 10 : validate.positiveInteger("options.batch", opts.batch, 1_000);
    this.blockMs =
      opts.blockMs === undefined
        ? 1_000
        : validate.durationMs("options.blockMs", opts.blockMs, { min: 10, max: 60_000 });
    this.claimIntervalMs =
      opts.claimIntervalMs === undefined
        ? Math.min(Math.max(Math.floor(this.claimIdleMs / 2), 10), 5_000)
        : validate.durationMs("options.claimIntervalMs", opts.claimIntervalMs, { min: 10, max: 86_400_000 });
    this.observed = group.log.observer?.onOperation !== undefined;
    // One turn's worth of finished handlers can await their XACK while as many new ones run, so an XACK round trip
    // overlaps the handlers; beyond that, XACK latency slows intake instead of growing what the consumer holds.
    this.ackAllowance = this.concurrency;
    // Refreshed at most claimIdleMs / 3 + claimIdleMs / 6 after it was fresh: half of claimIdleMs is left for the
    // refresh to reach Redis.
    this.refreshAfterMs = this.claimIdleMs / 3;
    this.refreshEveryMs = Math.max(Math.floor(this.claimIdleMs / 6), 5);
  }

  /** The consumer's name in its group. */
  get name(): string {
    return this.group.consumer;
  }

  /**
   * Current counters and what the consumer holds right now: `inflight` handlers running (and failed entries being
   * dead-lettered), `queued` entries received whose handler has not started, `acking` entries whose handler
   * succeeded and whose XACK is not answered yet (at most `2 × concurrency` entries are running or acking at once).
   */
  stats(): ConsumerStats & { readonly inflight: number; readonly queued: number; readonly acking: number } {
    return {
      ...this.counters,
      inflight: this.inflight,
      queued: this.queue.length - this.head,
      acking: this.acks.length + this.ackInflight,
    };
  }

  /** @internal */
  start(): void {
    this.loops = this.loop();
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
   * and their entries are acknowledged if Redis answers; any entry not acknowledged stays pending and is delivered
   * again after `claimIdleMs` (at least once, as always).
   * @throws InvalidArgumentError for a bad `timeoutMs` (1 ms – 1 day)
   */
  stop(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.stopped !== undefined) return this.stopped;
    const opts = validate.options<{ timeoutMs?: number }>("options", options);
    const timeoutMs =
      opts.timeoutMs === undefined
        ? DEFAULT_STOP_TIMEOUT_MS
        : validate.durationMs("options.timeoutMs", opts.timeoutMs, { min: 1, max: 86_400_000 });
    this.stopper.abort();
    this.changed();
    const drained = (async () => {
      await this.loops;
      while (this.busy()) await this.nextChange();
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    this.stopped = Promise.race([drained, deadline]).then(() => {
      this.closed = true;
      clearTimeout(timer);
      clearTimeout(this.refreshTimer);
      this.refreshTimer = undefined;
      this.conn?.disconnect();
    });
    return this.stopped;
  }

  private get stopping(): boolean {
    return this.stopper.signal.aborted;
  }

  private busy(): boolean {
    return this.inflight > 0 || this.head < this.queue.length || this.acks.length > 0 || this.ackInflight > 0;
  }

  private report(type: string, err: unknown): void {
    notifyEvent(this.group.log.observer, {
      primitive: "eventlog",
      type,
      name: this.group.log.name,
      attributes: { group: this.group.name },
      error: toCoordisError(err),
    });
  }

  /**
   * The one notifier: wakes everything waiting for the consumer's state to change (the loop waiting for a free slot,
   * `stop()` waiting for the drain). Called by {@link Consumer.pump}, which runs after every change that can free a
   * slot or end the drain (entries received, a handler settled, an XACK answered), and by `stop()`. A waiter
   * re-checks its condition after each wake-up, so a spurious one costs nothing.
   */
  private changed(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next {@link Consumer.changed}. */
  private nextChange(): Promise<void> {
    return new Promise<void>((r) => this.waiters.push(r));
  }

  /**
   * Handler slots taken: running handlers (and failed entries being dead-lettered), plus the entries awaiting their
   * XACK beyond {@link Consumer.ackAllowance}. Bounds what the consumer holds when XACKs are slow or failing: without
   * it, entries awaiting an XACK would grow with throughput × XACK latency, every one of them at risk of being
   * handled again if its XACK fails.
   */
  private occupied(): number {
    const overAllowance = this.acks.length + this.ackInflight - this.ackAllowance;
    return overAllowance > 0 ? this.inflight + overAllowance : this.inflight;
  }

  /**
   * Entries a read or claim may ask for now: the free handler slots (none while received entries wait), at most
   * `batch`. Only the loop's reads and claims start handlers, one command at a time, and nothing else takes a slot,
   * so what one command brings always starts at once.
   */
  private room(): number {
    if (this.head < this.queue.length) return 0;
    return Math.min(this.concurrency - this.occupied(), this.batch);
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopper.signal }).catch(() => {});
  }

  /**
   * Reads and claims, taking turns: a claim when one is due (every `claimIntervalMs`), a read otherwise, blocking
   * no longer than until the next claim is due; each asks only for the free slots, and nothing is sent while there
   * are none.
   */
  private async loop(): Promise<void> {
    const { stream } = this.group.log.keys;
    let cursor = "0-0";
    let claimAt = performance.now() + this.claimIntervalMs;
    while (!this.stopping) {
      // Read ahead while handlers run, but only for free slots: an entry delivered to this consumer that cannot start
      // would sit here while another consumer of the group could handle it.
      while (!this.stopping && this.room() <= 0) await this.nextChange();
      if (this.stopping) break;
      const now = performance.now();
      if (now >= claimAt) {
        claimAt = now + this.claimIntervalMs;
        cursor = await this.claim(cursor);
        continue;
      }
      try {
        await this.group.create();
        // stop() may have given up waiting meanwhile: open nothing after it.
        if (this.stopping) break;
        this.conn ??= this.openConnection();
        const count = this.room();
        if (count <= 0) continue;
        const sent = performance.now();
        const reply = (await this.conn.xreadgroup(
          "GROUP",
          this.group.name,
          this.group.consumer,
          "COUNT",
          count,
          "BLOCK",
          Math.min(this.blockMs, Math.max(1, Math.ceil(claimAt - sent))),
          "STREAMS",
          stream,
          ">",
        )) as [string, RawEntry[]][] | null;
        // Entries delivered by this read are ours even when stop() was called meanwhile: the drain handles them.
        const raws = reply?.[0]?.[1];
        if (raws !== undefined && raws.length > 0) {
          for (const raw of raws) this.enqueue(parseEntry<T>(raw), 1, sent);
          this.pump();
        }
      } catch (err) {
        if (err instanceof Error && err.message.startsWith("NOGROUP")) await this.group.recreate().catch(() => {});
        else this.report("consume-read-error", err);
        await this.pause(RETRY_MS);
      }
    }
  }

  private openConnection(): Redis | Cluster {
    const conn = this.group.log.blockingConnection(this.blockMs);
    conn.on("error", () => {});
    return conn;
  }

  /** One claim for the free slots, from `cursor` on; returns the cursor of the next one. */
  private async claim(cursor: string): Promise<string> {
    const log = this.group.log;
    const count = this.room();
    if (count <= 0) return cursor;
    try {
      // Entries whose handlers succeeded this turn and whose XACK waits for the end of the turn: acknowledged
      // first, on the same connection, so Redis runs the XACK before the claim and the claim cannot take them
      // back (or dead-letter them) as idle.
      this.flushAcks();
      const sent = performance.now();
      const [next, entries, dead] = await runScript(
        log.redis,
        eventlogScripts.claim,
        [log.keys.stream, log.keys.dlq],
        [this.group.name, this.group.consumer, this.claimIdleMs, cursor, count, this.maxDeliveries],
      );
      this.counters.deadLettered += dead;
      this.counters.claimed += entries.length;
      for (const [id, fields, deliveries] of entries) this.enqueue(parseEntry<T>([id, fields]), deliveries, sent);
      this.pump();
      if (entries.length > 0) {
        notifyEvent(log.observer, {
          primitive: "eventlog",
          type: "claimed",
          name: log.name,
          attributes: { group: this.group.name, count: entries.length },
        });
      }
      return next;
    } catch (err) {
      if (err instanceof Error && err.message.includes("NOGROUP")) await this.group.recreate().catch(() => {});
      else this.report("consume-claim-error", err);
      return cursor;
    }
  }

  private enqueue(entry: Entry<T>, deliveries: number, sent: number): void {
    const job: Job<T> = { entry, deliveries, started: 0, fresh: sent };
    this.queue.push(job);
    this.held.add(job);
    this.scheduleRefresh();
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer !== undefined || this.held.size === 0 || this.closed) return;
    this.refreshTimer = setTimeout(this.refreshNow, this.refreshEveryMs);
  }

  /**
   * Resets the idle time, in Redis, of the held entries that have been held {@link Consumer.refreshAfterMs} since
   * they were fresh: one script for all of them. One that is no longer pending for this consumer (reclaimed
   * elsewhere after a stall, or acknowledged meanwhile) is no longer held. A failed refresh is reported and tried
   * again at the next check.
   */
  private refresh(): void {
    if (this.refreshing) return;
    const now = performance.now();
    const due: Job<T>[] = [];
    for (const job of this.held) if (now - job.fresh >= this.refreshAfterMs) due.push(job);
    if (due.length === 0) return;
    this.refreshing = true;
    const log = this.group.log;
    const args: string[] = [this.group.name, this.group.consumer];
    for (const job of due) args.push(job.entry.id);
    runScriptDynamic(log.redis, eventlogScripts.refresh, [log.keys.stream], args)
      .then(
        (refreshed) => {
          const kept = new Set(refreshed);
          for (const job of due) {
            if (kept.has(job.entry.id)) job.fresh = now;
            else this.held.delete(job);
          }
        },
        (err: unknown) => this.report("consume-refresh-error", err),
      )
      .finally(() => {
        this.refreshing = false;
      });
  }

  /**
   * Starts queued entries while handler slots are free, then reports the change ({@link Consumer.changed}); runs
   * after every change of what the consumer holds. Re-entrant calls (a sync handler finishing) are no-ops: the outer
   * call goes on and reports.
   */
  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.head < this.queue.length && this.occupied() < this.concurrency) {
        const job = this.queue[this.head] as Job<T>;
        this.head++;
        this.inflight++;
        this.run(job);
      }
      if (this.head > 0 && this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
    } finally {
      this.pumping = false;
    }
    this.changed();
  }

  /**
   * Runs the handler of one job; a synchronous handler is finished (and its ack queued) before this returns. Never
   * throws: whatever goes wrong, the job ends exactly once, in `succeed` or `fail`, which give its slot back.
   */
  private run(job: Job<T>): void {
    if (this.observed) job.started = performance.now();
    let result: unknown;
    try {
      result = this.handler(job.entry, { deliveries: job.deliveries });
    } catch (err) {
      void this.fail(job, err);
      return;
    }
    if (!isObjectLike(result)) {
      this.succeed(job);
      return;
    }
    try {
      // Promise.resolve returns a native promise as is; any other thenable is adopted safely: a `then` (or a `then`
      // getter) that throws rejects, and a `then` calling back twice, or both ways, settles the job once.
      Promise.resolve(result).then(
        () => this.succeed(job),
        (err: unknown) => void this.fail(job, err),
      );
    } catch (err) {
      // Only a promise whose `constructor` getter throws gets here.
      void this.fail(job, err);
    }
  }

  /** Frees the slot of a job whose handler succeeded and queues its id for this turn's XACK. */
  private succeed(job: Job<T>): void {
    this.acks.push(job);
    if (this.acks.length >= MAX_ACK_IDS) this.flushAcks();
    else this.ackTimer ??= setImmediate(this.flushAcksNow);
    this.release();
  }

  private release(): void {
    this.inflight--;
    this.pump();
  }

  /**
   * Sends one XACK for every entry whose handler succeeded since the last one (at the end of the event-loop turn).
   * A failed XACK leaves them pending: they are delivered again after `claimIdleMs` (at least once).
   */
  private flushAcks(): void {
    if (this.ackTimer !== undefined) {
      clearImmediate(this.ackTimer);
      this.ackTimer = undefined;
    }
    const jobs = this.acks;
    if (jobs.length === 0) return;
    this.acks = [];
    this.ackInflight += jobs.length;
    const log = this.group.log;
    const ids = new Array<string>(jobs.length);
    for (let i = 0; i < jobs.length; i++) ids[i] = (jobs[i] as Job<T>).entry.id;
    log.redis.xack(log.keys.stream, this.group.name, ...ids).then(
      (count) => this.acked(jobs, Number(count), undefined),
      (err: unknown) => this.acked(jobs, 0, toCoordisError(err)),
    );
  }

  /**
   * An XACK was answered: `count` of its entries were acknowledged by it. The others were no longer pending (another
   * consumer reclaimed and acknowledged, or dead-lettered, them): they are not counted as `acked`, and the observer
   * reports them as `already-acked` (XACK replies a count, not which ids, so the last `jobs.length - count` of the
   * XACK get that outcome: the counts are exact, the attribution within one XACK is not).
   */
  private acked(jobs: readonly Job<T>[], count: number, error: Error | undefined): void {
    this.ackInflight -= jobs.length;
    this.counters.acked += count;
    // Settled either way: acknowledged, or (XACK failed) left pending to be delivered again after claimIdleMs.
    for (const job of jobs) this.held.delete(job);
    if (this.observed) {
      if (error !== undefined) for (const job of jobs) this.notify(job, "ack-error", error);
      else for (let i = 0; i < jobs.length; i++) this.notify(jobs[i] as Job<T>, i < count ? "acked" : "already-acked");
    }
    // Slots held by entries awaiting this XACK are free again.
    this.pump();
  }

  /** A failed handler: counted, dead-lettered after `maxDeliveries`, otherwise left pending; never acknowledged. */
  private async fail(job: Job<T>, err: unknown): Promise<void> {
    const log = this.group.log;
    // Left pending: no longer refreshed, so it is delivered again after claimIdleMs.
    this.held.delete(job);
    this.counters.failed++;
    const error = err instanceof Error ? err : new Error(String(err));
    let outcome = "failed";
    if (job.deliveries >= this.maxDeliveries) {
      try {
        const moved = await runScript(
          log.redis,
          eventlogScripts.deadLetter,
          [log.keys.stream, log.keys.dlq],
          [this.group.name, this.group.consumer, job.entry.id, `${error.name}: ${error.message}`.slice(0, 4_096)],
        );
        if (moved === 1) {
          this.counters.deadLettered++;
          outcome = "dead-lettered";
        }
      } catch (dlqErr) {
        this.report("dead-letter-error", dlqErr);
      }
    }
    if (this.observed) this.notify(job, outcome, error);
    this.release();
  }

  private notify(job: Job<T>, outcome: string, error?: Error): void {
    const log = this.group.log;
    notifyOperation(log.observer, {
      primitive: "eventlog",
      op: "consume",
      outcome,
      durationMs: performance.now() - job.started,
      name: log.name,
      attributes: { group: this.group.name, deliveries: job.deliveries },
      ...(error === undefined ? {} : { error }),
    });
  }
}
