import { setTimeout as sleep } from "node:timers/promises";
import { notifyEvent, notifyOperation, runScript, toCoordisError, validate } from "@coordis/core";
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
   * claim asks only for free slots, and at most `concurrency` entries await their XACK without taking a slot, so at
   * most `2 × concurrency` entries are running or awaiting their XACK. Synchronous or very short handlers gain from a
   * higher value: each read can then bring more entries (it costs them nothing else).
   */
  concurrency?: number;
  /** Entries pending longer than this (ms, 10 ms – 1 day) are reclaimed from their consumer; default 30,000. */
  claimIdleMs?: number;
  /** Deliveries before an entry is dead-lettered (1–1000); default 5. */
  maxDeliveries?: number;
  /**
   * Most entries fetched per read or claim (1–1000); default 10. A read or claim asks for no more entries than there
   * are free handler slots, so an entry received starts at once instead of waiting, idle, in this consumer while
   * other consumers of the group could take it (only when a claim and a read bring entries at the same moment does
   * up to one claim's worth wait for slots). The next read is sent as soon as a slot is free, while other handlers
   * still run.
   */
  batch?: number;
  /** How long one blocking XREADGROUP waits, ms (10–60,000); default 1000. `stop()` takes at most this long. */
  blockMs?: number;
  /** How often pending entries are checked for reclaiming, ms; default `claimIdleMs / 2` (10 ms – 5 s). */
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
}

/**
 * A running consumer of a {@link ConsumerGroup}: reads new entries with XREADGROUP on a connection of its own,
 * runs the handler (up to `concurrency` at once), XACKs after success, reclaims entries idle longer than
 * `claimIdleMs` (from consumers that died, or its own failures) with XAUTOCLAIM, and dead-letters entries past
 * `maxDeliveries`. Redis errors are reported to the observer and retried; the loop never stops by itself.
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
  private readonly waiters: Array<() => void> = [];
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
  /** Entries asked for by the claim in flight (its COUNT): slots a read leaves for what it brings. */
  private claiming = 0;
  private readonly flushAcksNow = () => this.flushAcks();
  private conn: Redis | Cluster | undefined;
  private loops: Promise<unknown> | undefined;
  private stopped: Promise<void> | undefined;
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
    this.loops = Promise.all([this.readLoop(), this.claimLoop()]);
  }

  /**
   * Stops reading and claiming, waits for the current read to return (at most `blockMs`), then drains: every
   * entry already received is handled and, when its handler succeeded, acknowledged (its XACK answered) before
   * this resolves; a failed one is left pending or dead-lettered as usual. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopper.abort();
      this.wake();
      await this.loops;
      while (this.busy()) await new Promise<void>((r) => this.waiters.push(r));
      this.conn?.disconnect();
    })();
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

  private wake(): void {
    if (this.waiters.length === 0) return;
    for (const w of this.waiters.splice(0)) w();
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
   * `batch`. A read leaves the slots asked for by a claim in flight. A claim does not leave those of a read in flight:
   * a read blocks for up to `blockMs` while the stream has nothing new, and with every slot asked for by it, no claim
   * (redelivery of failed entries, takeover from dead consumers) would ever run. So when a claim and a read bring
   * entries at the same moment, up to one claim's worth waits for slots.
   */
  private room(forClaim: boolean): number {
    if (this.head < this.queue.length) return 0;
    const free = this.concurrency - this.occupied() - (forClaim ? 0 : this.claiming);
    return Math.min(free, this.batch);
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopper.signal }).catch(() => {});
  }

  private async readLoop(): Promise<void> {
    const { stream } = this.group.log.keys;
    while (!this.stopping) {
      // Read ahead while handlers run, but only for free slots: an entry delivered to this consumer that cannot start
      // would sit idle here (its claimIdleMs clock running) while another consumer of the group could handle it.
      while (!this.stopping && this.room(false) <= 0) await new Promise<void>((r) => this.waiters.push(r));
      if (this.stopping) break;
      try {
        await this.group.create();
        this.conn ??= this.openConnection();
        const count = this.room(false);
        if (count <= 0) continue; // a claim took the slots while the group was being created
        const reply = (await this.conn.xreadgroup(
          "GROUP",
          this.group.name,
          this.group.consumer,
          "COUNT",
          count,
          "BLOCK",
          this.blockMs,
          "STREAMS",
          stream,
          ">",
        )) as [string, RawEntry[]][] | null;
        // Entries delivered by this read are ours even when stop() was called meanwhile: the drain handles them.
        const raws = reply?.[0]?.[1];
        if (raws !== undefined && raws.length > 0) {
          for (const raw of raws) this.enqueue(parseEntry<T>(raw), 1);
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

  private async claimLoop(): Promise<void> {
    const log = this.group.log;
    let cursor = "0-0";
    while (!this.stopping) {
      await this.pause(this.claimIntervalMs);
      if (this.stopping) continue;
      const count = this.room(true);
      if (count <= 0) continue;
      try {
        // Entries whose handlers succeeded this turn and whose XACK waits for the end of the turn: acknowledged
        // first, on the same connection, so Redis runs the XACK before the claim and the claim cannot take them
        // back (or dead-letter them) as idle.
        this.flushAcks();
        this.claiming += count;
        let reply: [string, [string, string[], number][], number];
        try {
          reply = await runScript(
            log.redis,
            eventlogScripts.claim,
            [log.keys.stream, log.keys.dlq],
            [this.group.name, this.group.consumer, this.claimIdleMs, cursor, count, this.maxDeliveries],
          );
        } finally {
          this.claiming -= count;
        }
        const [next, entries, dead] = reply;
        cursor = next;
        this.counters.deadLettered += dead;
        this.counters.claimed += entries.length;
        for (const [id, fields, deliveries] of entries) this.enqueue(parseEntry<T>([id, fields]), deliveries);
        this.pump();
        if (entries.length > 0) {
          notifyEvent(log.observer, {
            primitive: "eventlog",
            type: "claimed",
            name: log.name,
            attributes: { group: this.group.name, count: entries.length },
          });
        }
      } catch (err) {
        if (err instanceof Error && err.message.includes("NOGROUP")) await this.group.recreate().catch(() => {});
        else this.report("consume-claim-error", err);
      }
    }
  }

  private enqueue(entry: Entry<T>, deliveries: number): void {
    this.queue.push({ entry, deliveries, started: 0 });
  }

  /** Starts queued entries while handler slots are free; re-entrant calls (a sync handler finishing) are no-ops. */
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
    this.wake();
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
    if (this.observed) {
      if (error !== undefined) for (const job of jobs) this.notify(job, "ack-error", error);
      else for (let i = 0; i < jobs.length; i++) this.notify(jobs[i] as Job<T>, i < count ? "acked" : "already-acked");
    }
    // Slots held by entries awaiting this XACK are free again.
    this.pump();
    this.wake();
  }

  /** A failed handler: counted, dead-lettered after `maxDeliveries`, otherwise left pending; never acknowledged. */
  private async fail(job: Job<T>, err: unknown): Promise<void> {
    const log = this.group.log;
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
