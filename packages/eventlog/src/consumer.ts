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
  /** Handlers running at once in this consumer (1–1000); default 1. */
  concurrency?: number;
  /** Entries pending longer than this (ms, 10 ms – 1 day) are reclaimed from their consumer; default 30,000. */
  claimIdleMs?: number;
  /** Deliveries before an entry is dead-lettered (1–1000); default 5. */
  maxDeliveries?: number;
  /**
   * Entries fetched per read or claim (1–1000); default 10. The next read is sent as soon as every entry received
   * so far has started, while handlers still run (about one batch then waits for free handler slots).
   */
  batch?: number;
  /** How long one blocking XREADGROUP waits, ms (10–60,000); default 1000. `stop()` takes at most this long. */
  blockMs?: number;
  /** How often pending entries are checked for reclaiming, ms; default `claimIdleMs / 2` (10 ms – 5 s). */
  claimIntervalMs?: number;
}

/** Counters of a running {@link Consumer}. */
export interface ConsumerStats {
  /** Entries acknowledged after a successful handler. */
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

/** One received entry on its way through the consumer. */
interface Job<T> {
  readonly entry: Entry<T>;
  readonly deliveries: number;
  /** `performance.now()` when its handler started; measured only when an observer wants operations. */
  started: number;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}

/**
 * A running consumer of a {@link ConsumerGroup}: reads new entries with XREADGROUP on a connection of its own,
 * runs the handler (up to `concurrency` at once), XACKs after success, reclaims entries idle longer than
 * `claimIdleMs` (from consumers that died, or its own failures) with XAUTOCLAIM, and dead-letters entries past
 * `maxDeliveries`. Redis errors are reported to the observer and retried; the loop never stops by itself.
 *
 * Acknowledgements are coalesced: the entries whose handlers succeeded in one event-loop turn are acknowledged by
 * one XACK sent at the end of that turn (`setImmediate`), never before their handler succeeded. A failed handler's
 * entry is never acknowledged (it stays pending, or is dead-lettered).
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
  }

  /** The consumer's name in its group. */
  get name(): string {
    return this.group.consumer;
  }

  /**
   * Current counters and what the consumer holds right now: `inflight` handlers running (and failed entries being
   * dead-lettered), `queued` entries received whose handler has not started, `acking` entries whose handler
   * succeeded and whose XACK is not answered yet.
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

  /** Room for claimed entries: nothing queued and a free handler slot. */
  private hasCapacity(): boolean {
    return this.head === this.queue.length && this.inflight < this.concurrency;
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopper.signal }).catch(() => {});
  }

  private async readLoop(): Promise<void> {
    const { stream } = this.group.log.keys;
    while (!this.stopping) {
      // Read ahead: the next read goes out once every received entry has started, while handlers still run.
      while (!this.stopping && this.head < this.queue.length) await new Promise<void>((r) => this.waiters.push(r));
      if (this.stopping) break;
      try {
        await this.group.create();
        this.conn ??= this.openConnection();
        const reply = (await this.conn.xreadgroup(
          "GROUP",
          this.group.name,
          this.group.consumer,
          "COUNT",
          this.batch,
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
      if (this.stopping || !this.hasCapacity()) continue;
      try {
        const [next, entries, dead] = await runScript(
          log.redis,
          eventlogScripts.claim,
          [log.keys.stream, log.keys.dlq],
          [this.group.name, this.group.consumer, this.claimIdleMs, cursor, this.batch, this.maxDeliveries],
        );
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
      while (this.inflight < this.concurrency && this.head < this.queue.length) {
        const job = this.queue[this.head] as Job<T>;
        this.head++;
        this.inflight++;
        this.run(job);
      }
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Runs the handler of one job; a synchronous handler is finished (and its ack queued) before this returns. */
  private run(job: Job<T>): void {
    if (this.observed) job.started = performance.now();
    let result: void | Promise<void>;
    try {
      result = this.handler(job.entry, { deliveries: job.deliveries });
    } catch (err) {
      void this.fail(job, err);
      return;
    }
    if (isThenable(result)) {
      result.then(
        () => this.succeed(job),
        (err: unknown) => void this.fail(job, err),
      );
    } else this.succeed(job);
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
      () => {
        this.counters.acked += jobs.length;
        this.acked(jobs, undefined);
      },
      (err: unknown) => this.acked(jobs, toCoordisError(err)),
    );
  }

  private acked(jobs: readonly Job<T>[], error: Error | undefined): void {
    this.ackInflight -= jobs.length;
    if (this.observed) {
      const outcome = error === undefined ? "acked" : "ack-error";
      for (const job of jobs) this.notify(job, outcome, error);
    }
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

  private notify(job: Job<T>, outcome: string, error: Error | undefined): void {
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
