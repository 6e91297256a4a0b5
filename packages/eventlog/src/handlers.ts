import { errorOf, reportOperation, runScript, runScriptDynamic, toCoordisError } from "@coordis/core";
import type { ConsumeSettings } from "./consumer-options.js";
import { bounded, type GroupHandle, site } from "./context.js";
import type { Entry } from "./entries.js";
import type { HeldEntry, Refresher } from "./refresh.js";
import { eventlogScripts } from "./scripts.generated.js";
import type { ConsumeHandler } from "./types.js";

/** Most ids one XACK carries: a turn that handled more entries sends several. */
const MAX_ACK_IDS = 1_000;

/** What a handler returned, when it is not a plain value: settled through `Promise.resolve`. */
function isObjectLike(value: unknown): value is object {
  return value !== null && (typeof value === "object" || typeof value === "function");
}

/** One received entry on its way through the consumer. */
interface Job<T> extends HeldEntry {
  readonly entry: Entry<T>;
  /** Deliveries so far, as Redis counts them: raised when a claim brings the entry back while its handler runs. */
  deliveries: number;
  /** `performance.now()` when its handler started; measured only when an observer wants operations. */
  started: number;
}

/**
 * The handler side of a {@link Consumer}: received entries wait here until a handler slot is free, run (up to
 * `concurrency` at once), and end exactly once: acknowledged after success (coalesced: one XACK per event-loop turn,
 * sent at its end), or failed (left pending, or dead-lettered after `maxDeliveries`; never acknowledged). Entries
 * awaiting their XACK beyond `concurrency` take handler slots, so at most `2 × concurrency` entries are running or
 * awaiting their XACK, however slow XACKs are. Every change of what it holds is announced to the waiters of
 * {@link Handlers.nextChange} (the consumer's loop, its drain).
 * @internal
 */
export class Handlers<T> {
  /** Counters of {@link Consumer.stats}; the consumer's claims count `claimed` and `deadLettered` too. */
  readonly counters = { acked: 0, ackedLate: 0, failed: 0, deadLettered: 0, claimed: 0 };
  readonly #group: GroupHandle;
  readonly #handler: ConsumeHandler<T>;
  readonly #concurrency: number;
  readonly #batch: number;
  readonly #maxDeliveries: number;
  readonly #held: Refresher;
  readonly #report: (type: string, err: unknown) => void;
  /** Whether operations are timed and reported (the observer is fixed when the log is built). */
  readonly #observed: boolean;
  /**
   * Entries this consumer holds by id: received and not started, running, or awaiting their XACK. A claim that brings
   * one of them back (its idle time ran past `claimIdleMs` during a stall) starts no second handler for it.
   */
  readonly #holding = new Map<string, Job<T>>();
  /** Received entries not started yet: `queue[head]` is the next one (a plain array with a moving head). */
  #queue: Job<T>[] = [];
  #head = 0;
  /** Resolvers of the waits for the next change of state; see {@link Handlers.changed}. */
  #waiters: Array<() => void> = [];
  #inflight = 0;
  #pumping = false;
  /** Set when `stop()` resolved: no handler starts any more (see {@link Handlers.close}). */
  #closed = false;
  /** Succeeded entries waiting for the end of this turn's XACK. */
  #acks: Job<T>[] = [];
  #ackTimer: NodeJS.Immediate | undefined;
  /** Succeeded entries whose XACK was sent and not answered yet. */
  #ackInflight = 0;
  /** Entries awaiting their XACK (queued or sent) that take no handler slot; see {@link Handlers.occupied}. */
  readonly #ackAllowance: number;
  readonly #flushAcksNow = () => this.flushAcks();

  constructor(
    group: GroupHandle,
    handler: ConsumeHandler<T>,
    settings: ConsumeSettings,
    held: Refresher,
    report: (type: string, err: unknown) => void,
  ) {
    this.#group = group;
    this.#handler = handler;
    this.#concurrency = settings.concurrency;
    this.#batch = settings.batch;
    this.#maxDeliveries = settings.maxDeliveries;
    this.#held = held;
    this.#report = report;
    this.#observed = group.log.observer?.onOperation !== undefined;
    // One turn's worth of finished handlers can await their XACK while as many new ones run, so an XACK round trip
    // overlaps the handlers; beyond that, XACK latency slows intake instead of growing what the consumer holds.
    this.#ackAllowance = settings.concurrency;
  }

  /** What it holds right now (see {@link Consumer.stats}). */
  holding(): { readonly inflight: number; readonly queued: number; readonly acking: number } {
    return {
      inflight: this.#inflight,
      queued: this.#queue.length - this.#head,
      acking: this.#acks.length + this.#ackInflight,
    };
  }

  /** Something is running, queued or awaiting its XACK. */
  busy(): boolean {
    return this.#inflight > 0 || this.#head < this.#queue.length || this.#acks.length > 0 || this.#ackInflight > 0;
  }

  /**
   * The one notifier: wakes everything waiting for the consumer's state to change (the loop waiting for a free slot,
   * `stop()` waiting for the drain). Called by {@link Handlers.pump}, which runs after every change that can free a
   * slot or end the drain (entries received, a handler settled, an XACK answered), and by `stop()`. A waiter
   * re-checks its condition after each wake-up, so a spurious one costs nothing.
   */
  changed(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves at the next {@link Handlers.changed}. */
  nextChange(): Promise<void> {
    return new Promise<void>((r) => this.#waiters.push(r));
  }

  /**
   * Entries a read or claim may ask for now: the free handler slots (none while received entries wait), at most
   * `batch`. Only the loop's reads and claims start handlers, one command at a time, and nothing else takes a slot,
   * so what one command brings always starts at once.
   */
  room(): number {
    if (this.#head < this.#queue.length) return 0;
    return Math.min(this.#concurrency - this.#occupied(), this.#batch);
  }

  /**
   * `stop()` resolved (drained, or at its deadline): entries received from now on (a read or claim answered after
   * the deadline) and entries still queued are not handled; they stay pending in Redis and are delivered again after
   * `claimIdleMs`. Handlers already running finish.
   */
  close(): void {
    this.#closed = true;
  }

  /**
   * An entry delivered by a read or claim sent at `sent` (`performance.now()`); start it with {@link pump}. Returns
   * false when it is not queued: `stop()` resolved, or this consumer holds the entry already (its handler runs or its
   * XACK is on its way: a claim took it back to this consumer after a stall); the claim made the entry this
   * consumer's again, so it is refreshed as held from then on, and its running handler acknowledges it.
   */
  enqueue(entry: Entry<T>, deliveries: number, sent: number): boolean {
    if (this.#closed) return false;
    const holding = this.#holding.get(entry.id);
    if (holding !== undefined) {
      holding.fresh = sent;
      // The claim counted a delivery: a failure of the running handler is judged against maxDeliveries by it.
      holding.deliveries = deliveries;
      this.#held.hold(holding);
      return false;
    }
    const job: Job<T> = { entry, deliveries, started: 0, fresh: sent };
    this.#queue.push(job);
    this.#holding.set(entry.id, job);
    this.#held.hold(job);
    return true;
  }

  /**
   * Starts queued entries while handler slots are free, then reports the change ({@link Handlers.changed}); runs
   * after every change of what the consumer holds. Re-entrant calls (a sync handler finishing) are no-ops: the outer
   * call goes on and reports.
   */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#closed && this.#head < this.#queue.length && this.#occupied() < this.#concurrency) {
        const job = this.#queue[this.#head] as Job<T>;
        this.#head++;
        this.#inflight++;
        this.#run(job);
      }
      if (this.#head > 0 && this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
    } finally {
      this.#pumping = false;
    }
    this.changed();
  }

  /**
   * Sends one XACK for every entry whose handler succeeded since the last one (at the end of the event-loop turn).
   * A failed XACK leaves them pending: they are delivered again after `claimIdleMs` (at least once).
   */
  flushAcks(): void {
    if (this.#ackTimer !== undefined) {
      clearImmediate(this.#ackTimer);
      this.#ackTimer = undefined;
    }
    const jobs = this.#acks;
    if (jobs.length === 0) return;
    this.#acks = [];
    this.#ackInflight += jobs.length;
    const { log, name } = this.#group;
    const ids = new Array<string>(jobs.length);
    for (let i = 0; i < jobs.length; i++) ids[i] = (jobs[i] as Job<T>).entry.id;
    // Bounded: an XACK that never settles would hold its entries forever (refreshed, never delivered again).
    bounded(log, log.redis.xack(log.keys.stream, name, ...ids), "XACK").then(
      (count) => this.#acked(jobs, Number(count), undefined),
      (err: unknown) => this.#acked(jobs, 0, toCoordisError(err)),
    );
  }

  /**
   * Handler slots taken: running handlers (and failed entries being dead-lettered), plus the entries awaiting their
   * XACK beyond the allowance. Bounds what the consumer holds when XACKs are slow or failing: without it, entries
   * awaiting an XACK would grow with throughput × XACK latency, every one of them at risk of being handled again if
   * its XACK fails.
   */
  #occupied(): number {
    const overAllowance = this.#acks.length + this.#ackInflight - this.#ackAllowance;
    return overAllowance > 0 ? this.#inflight + overAllowance : this.#inflight;
  }

  /**
   * Runs the handler of one job; a synchronous handler is finished (and its ack queued) before this returns. Never
   * throws: whatever goes wrong, the job ends exactly once, in `succeed` or `fail`, which give its slot back.
   */
  #run(job: Job<T>): void {
    if (this.#observed) job.started = performance.now();
    let result: unknown;
    try {
      result = this.#handler(job.entry, { deliveries: job.deliveries });
    } catch (err) {
      void this.#fail(job, err);
      return;
    }
    if (!isObjectLike(result)) {
      this.#succeed(job);
      return;
    }
    try {
      // Promise.resolve returns a native promise as is; any other thenable is adopted safely: a `then` (or a `then`
      // getter) that throws rejects, and a `then` calling back twice, or both ways, settles the job once.
      Promise.resolve(result).then(
        () => this.#succeed(job),
        (err: unknown) => void this.#fail(job, err),
      );
    } catch (err) {
      // Only a promise whose `constructor` getter throws gets here.
      void this.#fail(job, err);
    }
  }

  /** Frees the slot of a job whose handler succeeded and queues its id for this turn's XACK. */
  #succeed(job: Job<T>): void {
    this.#acks.push(job);
    if (this.#acks.length >= MAX_ACK_IDS) this.flushAcks();
    else this.#ackTimer ??= setImmediate(this.#flushAcksNow);
    this.#release();
  }

  #release(): void {
    this.#inflight--;
    this.pump();
  }

  /**
   * An XACK was answered: `count` of its entries were acknowledged by it. The others were no longer pending: another
   * consumer reclaimed and acknowledged them, or a claim dead-lettered them while this consumer stalled. For those,
   * and only then (nothing more is sent after an XACK that acknowledged every entry it named), one script looks for
   * the dead letters a claim made of them while this consumer held them, and removes them: the entries were handled
   * ({@link Handlers.#ackedShort}).
   */
  #acked(jobs: readonly Job<T>[], count: number, error: Error | undefined): void {
    if (error === undefined && count < jobs.length) void this.#ackedShort(jobs, count);
    else this.#ackSettled(jobs, count, error, undefined);
  }

  /**
   * An XACK acknowledged fewer entries than it named: removes the dead letters a claim made of its entries while this
   * consumer held them (`lua/eventlog/late-ack.lua`, looking back to when the oldest of them was delivered or last
   * refreshed). Those entries are `acked-late`; the others not acknowledged by the XACK are `already-acked`. A failure
   * of the script is reported (`dead-letter-error`) and leaves the dead letters in place.
   */
  async #ackedShort(jobs: readonly Job<T>[], count: number): Promise<void> {
    let late: ReadonlySet<string> | undefined;
    try {
      const { log, name, consumer } = this.#group;
      const now = performance.now();
      let oldest = now;
      const args = [name, consumer, ""];
      for (const job of jobs) {
        args.push(job.entry.id);
        if (job.fresh < oldest) oldest = job.fresh;
      }
      args[2] = String(Math.ceil(now - oldest));
      late = new Set(
        await runScriptDynamic(log.redis, eventlogScripts.lateAck, [log.keys.dlq, log.keys.deadLetterIndex], args),
      );
    } catch (err) {
      this.#report("dead-letter-error", err);
    }
    this.#ackSettled(jobs, count, undefined, late);
  }

  /**
   * The entries of an XACK are settled: `count` acknowledged by it, those in `late` acknowledged late (their dead
   * letter removed), the rest already acknowledged elsewhere, or all left pending when `error` says the XACK failed.
   * XACK replies a count, not which ids: the counts are exact, the attribution of `acked` and `already-acked` within
   * one XACK is not (`acked-late` is).
   */
  #ackSettled(
    jobs: readonly Job<T>[],
    count: number,
    error: Error | undefined,
    late: ReadonlySet<string> | undefined,
  ): void {
    this.#ackInflight -= jobs.length;
    this.counters.acked += count;
    if (late !== undefined) this.counters.ackedLate += late.size;
    // Settled either way: acknowledged, or (XACK failed) left pending to be delivered again after claimIdleMs.
    for (const job of jobs) this.#settled(job);
    if (this.#observed) {
      if (error !== undefined) for (const job of jobs) this.#notify(job, "ack-error", error);
      else {
        let acked = 0;
        for (const job of jobs) {
          if (late?.has(job.entry.id) === true) this.#notify(job, "acked-late");
          else this.#notify(job, acked++ < count ? "acked" : "already-acked");
        }
      }
    }
    // Slots held by entries awaiting this XACK are free again.
    this.pump();
  }

  /** A failed handler: counted, dead-lettered after `maxDeliveries`, otherwise left pending; never acknowledged. */
  async #fail(job: Job<T>, err: unknown): Promise<void> {
    const { log, name, consumer } = this.#group;
    // Left pending: no longer refreshed, so it is delivered again after claimIdleMs.
    this.#settled(job);
    this.counters.failed++;
    const error = errorOf(err);
    let outcome = "failed";
    if (job.deliveries >= this.#maxDeliveries) {
      try {
        const moved = await runScript(
          log.redis,
          eventlogScripts.deadLetter,
          [log.keys.stream, log.keys.dlq],
          [name, consumer, job.entry.id, `${error.name}: ${error.message}`.slice(0, 4_096)],
        );
        if (moved === 1) {
          this.counters.deadLettered++;
          outcome = "dead-lettered";
        }
      } catch (dlqErr) {
        this.#report("dead-letter-error", dlqErr);
      }
    }
    if (this.#observed) this.#notify(job, outcome, error);
    this.#release();
  }

  /** A job's run ended (acknowledged, its XACK failed, or its handler failed): no longer held. */
  #settled(job: Job<T>): void {
    this.#held.release(job);
    if (this.#holding.get(job.entry.id) === job) this.#holding.delete(job.entry.id);
  }

  #notify(job: Job<T>, outcome: string, error?: Error): void {
    const attributes = { group: this.#group.name, deliveries: job.deliveries };
    reportOperation(
      this.#group.log.observer,
      site(this.#group.log, "consume", attributes),
      job.started,
      outcome,
      error,
    );
  }
}
