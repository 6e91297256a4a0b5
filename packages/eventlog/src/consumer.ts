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
  /** Entries fetched per read or claim (1–1000); default 10. */
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

/**
 * A running consumer of a {@link ConsumerGroup}: reads new entries with XREADGROUP on a connection of its own,
 * runs the handler (up to `concurrency` at once), XACKs after success, reclaims entries idle longer than
 * `claimIdleMs` (from consumers that died, or its own failures) with XAUTOCLAIM, and dead-letters entries past
 * `maxDeliveries`. Redis errors are reported to the observer and retried; the loop never stops by itself.
 */
export class Consumer<T = unknown> {
  private readonly concurrency: number;
  private readonly claimIdleMs: number;
  private readonly maxDeliveries: number;
  private readonly batch: number;
  private readonly blockMs: number;
  private readonly claimIntervalMs: number;
  private readonly queue: Array<{ entry: Entry<T>; deliveries: number }> = [];
  private readonly waiters: Array<() => void> = [];
  private readonly stopper = new AbortController();
  private inflight = 0;
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
  }

  /** The consumer's name in its group. */
  get name(): string {
    return this.group.consumer;
  }

  /** Current counters. */
  stats(): ConsumerStats & { readonly inflight: number; readonly queued: number } {
    return { ...this.counters, inflight: this.inflight, queued: this.queue.length };
  }

  /** @internal */
  start(): void {
    this.loops = Promise.all([this.readLoop(), this.claimLoop()]);
  }

  /**
   * Stops reading and claiming, waits for the current read to return (at most `blockMs`), then drains: every
   * entry already received is handled and acknowledged (or left pending on failure) before this resolves.
   * Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopper.abort();
      this.wake();
      await this.loops;
      while (this.inflight > 0 || this.queue.length > 0) await new Promise<void>((r) => this.waiters.push(r));
      this.conn?.disconnect();
    })();
    return this.stopped;
  }

  private get stopping(): boolean {
    return this.stopper.signal.aborted;
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
    for (const w of this.waiters.splice(0)) w();
  }

  private hasCapacity(): boolean {
    return this.queue.length === 0 && this.inflight < this.concurrency;
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopper.signal }).catch(() => {});
  }

  private async readLoop(): Promise<void> {
    const { stream } = this.group.log.keys;
    while (!this.stopping) {
      while (!this.stopping && !this.hasCapacity()) await new Promise<void>((r) => this.waiters.push(r));
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
        for (const raw of reply?.[0]?.[1] ?? []) this.schedule(parseEntry<T>(raw), 1);
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
        for (const [id, fields, deliveries] of entries) this.schedule(parseEntry<T>([id, fields]), deliveries);
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

  private schedule(entry: Entry<T>, deliveries: number): void {
    this.queue.push({ entry, deliveries });
    this.pump();
  }

  private pump(): void {
    while (this.inflight < this.concurrency) {
      const job = this.queue.shift();
      if (job === undefined) return;
      this.inflight++;
      void this.process(job.entry, job.deliveries).finally(() => {
        this.inflight--;
        this.pump();
        this.wake();
      });
    }
  }

  private async process(entry: Entry<T>, deliveries: number): Promise<void> {
    const log = this.group.log;
    const started = performance.now();
    let outcome = "acked";
    let error: Error | undefined;
    try {
      await this.handler(entry, { deliveries });
      try {
        await log.redis.xack(log.keys.stream, this.group.name, entry.id);
        this.counters.acked++;
      } catch (err) {
        // Still pending: it is delivered again after claimIdleMs (at least once).
        outcome = "ack-error";
        error = toCoordisError(err);
      }
    } catch (err) {
      this.counters.failed++;
      error = err instanceof Error ? err : new Error(String(err));
      outcome = "failed";
      if (deliveries >= this.maxDeliveries) {
        try {
          const moved = await runScript(
            log.redis,
            eventlogScripts.deadLetter,
            [log.keys.stream, log.keys.dlq],
            [this.group.name, this.group.consumer, entry.id, `${error.name}: ${error.message}`.slice(0, 4_096)],
          );
          if (moved === 1) {
            this.counters.deadLettered++;
            outcome = "dead-lettered";
          }
        } catch (dlqErr) {
          this.report("dead-letter-error", dlqErr);
        }
      }
    }
    notifyOperation(log.observer, {
      primitive: "eventlog",
      op: "consume",
      outcome,
      durationMs: performance.now() - started,
      name: log.name,
      attributes: { group: this.group.name, deliveries },
      ...(error === undefined ? {} : { error }),
    });
  }
}
