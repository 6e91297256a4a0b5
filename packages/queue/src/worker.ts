import { setTimeout as sleep } from "node:timers/promises";
import {
  disconnectWithin,
  InvalidArgumentError,
  isCluster,
  notifyEvent,
  notifyOperation,
  ownConnectionOptions,
  type RedisClient,
  runScript,
  toCoordisError,
  validate,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { PartitionsMismatchError } from "./errors.js";
import { Finisher, type FinishKind, type FinishStatus } from "./finisher.js";
import { Delivery, type Job } from "./job.js";
import { type PartitionKeys, queueKeys, validateQueueName } from "./keys.js";
import { LeaseKeeper } from "./lease-keeper.js";
import { checkPartitions } from "./partitions-check.js";
import { Scheduler } from "./scheduler.js";
import { queueScripts } from "./scripts.generated.js";
import { CLOSE_GRACE_MS, type CloseOptions, errorText, until } from "./worker-close.js";
import { onlyKeys, type ParsedWorker, parseWorker, WORKER_KEYS, type WorkerOptions } from "./worker-options.js";

/** Runs one job; resolve with its result, throw to fail the attempt (retried after the backoff, then dead). */
export type Handler<T, R> = (job: Job<T>) => Promise<R> | R;

type FetchReply = [
  nowMs: number,
  paused: number,
  nextDueMs: number,
  lastReady: string,
  lastWake: string,
  ...job: (string | number)[],
];

/** Pause after a failed fetch, ms. */
const FETCH_RETRY_MS = 250;
/** Most jobs one fetch asks for. */
const MAX_FETCH = 200;
/**
 * Runs the jobs of a queue: fetches them in batches (one script call per partition brings up to the free handler
 * slots, each job with a new fence and a lease on Redis server time), runs `handler` for each (up to `concurrency` at
 * once), renews the leases of running jobs every `leaseMs / 3` (one call per partition for all of them) and records
 * outcomes in batches (one call per partition per event-loop turn). Idle, it blocks on Redis (XREAD) until new work
 * arrives or a delayed job becomes due; it never polls. It also fires the queue's schedules (`schedules: false` to
 * leave that to others). Starts at construction; stop it with {@link Worker.close}.
 *
 * @example
 * const worker = new Worker<{ to: string }, string>(redis, "emails", async (job) => {
 *   await mailer.send(job.data.to, { idempotencyKey: job.id, fence: job.fence, signal: job.signal });
 *   return "sent";
 * }, { concurrency: 20 });
 */
export class Worker<T = unknown, R = unknown> {
  /** The queue's name. */
  readonly name: string;
  readonly #redis: RedisClient;
  readonly #opts: ParsedWorker<T, R>;
  readonly #keys: readonly PartitionKeys[];
  readonly #handler: Handler<T, R>;
  /** Deliveries held, running or finishing, by `<partition>\n<id>`. */
  readonly #held = new Map<string, Delivery<T>>();
  #running = 0;
  /** Slots asked for by fetches in flight. */
  #reserved = 0;
  #slotWaiters: Array<() => void> = [];
  readonly #stopper = new AbortController();
  readonly #finisher: Finisher;
  readonly #leases: LeaseKeeper<T>;
  readonly #scheduler: Scheduler | undefined;
  readonly #blocking: Array<Redis | Cluster | undefined>;
  readonly #loops: Promise<void>[];
  #closed: Promise<void> | undefined;
  /** True once the partition count was checked against the queue's; false when it differs or the worker closed first. */
  readonly #checked: Promise<boolean>;
  #mismatch: PartitionsMismatchError | undefined;
  readonly #stats = { completed: 0, retried: 0, dead: 0, refused: 0, handedBack: 0 };

  /**
   * @param redis an ioredis `Redis` or `Cluster` (the worker also opens one blocking connection per partition)
   * @param name the queue's name
   * @param handler runs one job
   * @param options see {@link WorkerOptions}
   * @throws InvalidArgumentError for a bad argument (nothing is started)
   */
  constructor(redis: RedisClient, name: string, handler: Handler<T, R>, options: WorkerOptions<T, R> = {}) {
    validate.redisClient("redis", redis);
    this.name = validateQueueName(name);
    this.#handler = validate.func<Handler<T, R>>("handler", handler);
    const o = validate.options<WorkerOptions<T, R>>("options", options);
    onlyKeys("options", o, WORKER_KEYS);
    this.#opts = parseWorker(redis, o);
    this.#redis = redis;
    this.#keys = queueKeys(this.#opts.prefix, name, this.#opts.partitions);
    const { retention } = this.#opts;
    this.#finisher = new Finisher(
      redis,
      this.#keys,
      { maxDone: retention.completed, maxDead: retention.dead, deadAgeMs: retention.deadAgeMs },
      this.#opts.leaseMs,
    );
    this.#leases = new LeaseKeeper<T>(redis, this.#keys, this.#held, this.#opts.leaseMs, (d, reason) =>
      this.#lost(d, reason),
    );
    this.#blocking = this.#keys.map(() => undefined);
    this.#scheduler = this.#opts.schedules ? new Scheduler(redis, this.#keys, name, this.#opts.observer) : undefined;
    this.#checked = this.#checkPartitions();
    this.#loops = this.#keys.map((k) => this.#loop(k));
    this.#leases.start();
    void this.#checked.then((ok) => {
      if (ok && !this.#closing) this.#scheduler?.start();
    });
  }

  /**
   * Resolves once the worker checked, in its first round trip, that it uses the queue's `partitions` (recorded in
   * Redis by the queue's first Queue or Worker); it fetches nothing before. Rejects with PartitionsMismatchError when
   * the counts differ: the worker then never fetches (the error is also reported as the event `partitions-mismatch`);
   * close it and start one with the queue's count. Resolves as well when the worker closed before it could check.
   */
  async ready(): Promise<void> {
    await this.#checked;
    if (this.#mismatch !== undefined) throw this.#mismatch;
  }

  async #checkPartitions(): Promise<boolean> {
    const { prefix, partitions } = this.#opts;
    while (!this.#closing) {
      try {
        await checkPartitions(this.#redis, prefix, this.name, partitions);
        return true;
      } catch (err) {
        if (err instanceof PartitionsMismatchError) {
          this.#mismatch = err;
          this.#event("partitions-mismatch", { error: err });
          return false;
        }
        this.#event("fetch-error", { error: toCoordisError(err) });
        await sleep(FETCH_RETRY_MS, undefined, { signal: this.#stopper.signal }).catch(() => {});
      }
    }
    return false;
  }

  /** Counters of this worker since it started. */
  stats(): { completed: number; retried: number; dead: number; refused: number; handedBack: number; running: number } {
    return { ...this.#stats, running: this.#running };
  }

  /**
   * Stops fetching at once, lets running handlers finish for up to `timeoutMs`, then hands the jobs still running back
   * to the queue in one call per partition (they are fetched again at once by other workers, no lease to wait for;
   * their `signal` aborts and whatever their handlers finish later is refused). Resolves when every outcome is
   * recorded and the worker's own connections are closed (the `redis` client is not). Idempotent.
   *
   * Bounded: it resolves within `timeoutMs` + {@link CLOSE_GRACE_MS} whatever Redis does. When Redis cannot be
   * reached (or the client is stuck reconnecting), the jobs that could not be handed back and the outcomes that could
   * not be recorded by then are left to their leases: those jobs are delivered again once their leases expire. A
   * fetch still in flight that answers later has its jobs handed back at once, never started.
   */
  close(options?: CloseOptions): Promise<void> {
    const o = validate.options<CloseOptions>("options", options);
    onlyKeys("options", o, ["timeoutMs"]);
    const timeoutMs = validate.optional(o.timeoutMs, 30_000, (v) =>
      validate.durationMs("options.timeoutMs", v, { min: 0, max: 24 * 60 * 60 * 1000 }),
    );
    this.#closed ??= this.#close(timeoutMs);
    return this.#closed;
  }

  get #closing(): boolean {
    return this.#stopper.signal.aborted;
  }

  async #close(timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    const hardDeadline = deadline + CLOSE_GRACE_MS;
    this.#stopper.abort();
    const disconnected = Promise.all(
      this.#blocking.map((conn) => (conn === undefined ? undefined : disconnectWithin(conn))),
    );
    this.#wakeSlots();
    const scheduler = this.#scheduler?.stop() ?? Promise.resolve();
    while (this.#running > 0 && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - performance.now()));
        this.#slotWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    await until(this.#handBack(), hardDeadline);
    // Fetches in flight hand what they bring back themselves (the loop sees the worker closing).
    await until(Promise.all([...this.#loops, scheduler, this.#finisher.drain()]), hardDeadline);
    this.#finisher.abandon();
    this.#leases.stop();
    await until(disconnected, Math.max(hardDeadline, performance.now() + 1));
  }

  /** Hands every delivery whose handler still runs back to the queue. */
  async #handBack(): Promise<void> {
    const byPartition = new Map<number, Delivery<T>[]>();
    for (const d of this.#held.values()) {
      if (d.phase !== "running") continue;
      d.lose("closing");
      const list = byPartition.get(d.partition) ?? [];
      list.push(d);
      byPartition.set(d.partition, list);
    }
    await Promise.all(
      [...byPartition].map(async ([p, list]) => {
        const k = this.#keys[p] as PartitionKeys;
        const args = list.flatMap((d) => [d.id, d.fence]);
        try {
          const n = await runScript(this.#redis, queueScripts.release, k.all as never, args as never);
          this.#stats.handedBack += n;
        } catch (err) {
          // Not handed back: their leases expire and they are reclaimed as usual.
          this.#event("release-error", { error: toCoordisError(err) });
        }
        for (const d of list) this.#held.delete(d.key);
      }),
    );
  }

  /** Hands back the deliveries of a fetch that answered once the worker was closing (never started). */
  async #release(k: PartitionKeys, jobs: (string | number)[]): Promise<void> {
    const args: (string | number)[] = [];
    for (let i = 0; i + 4 < jobs.length; i += 5) args.push(String(jobs[i]), Number(jobs[i + 1]));
    if (args.length === 0) return;
    try {
      this.#stats.handedBack += await runScript(this.#redis, queueScripts.release, k.all as never, args as never);
    } catch (err) {
      this.#event("release-error", { error: toCoordisError(err) });
    }
  }

  /** Free handler slots: neither running nor asked for by a fetch in flight. */
  #room(): number {
    return this.#opts.concurrency - this.#running - this.#reserved;
  }

  #wakeSlots(): void {
    if (this.#slotWaiters.length === 0) return;
    const waiters = this.#slotWaiters;
    this.#slotWaiters = [];
    for (const w of waiters) w();
  }

  async #loop(k: PartitionKeys): Promise<void> {
    const o = this.#opts;
    if (!(await this.#checked)) return;
    while (!this.#closing) {
      const room = Math.min(this.#room(), MAX_FETCH);
      if (room <= 0) {
        await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
        continue;
      }
      this.#reserved += room;
      const sentAt = performance.now();
      let reply: FetchReply;
      try {
        reply = await this.#fetch(k, room);
      } catch (err) {
        this.#event("fetch-error", { error: toCoordisError(err) });
        await sleep(FETCH_RETRY_MS, undefined, { signal: this.#stopper.signal }).catch(() => {});
        continue;
      } finally {
        this.#reserved -= room;
      }
      const [, , nextDueMs, lastReady, lastWake, ...jobs] = reply;
      if (this.#closing) {
        await this.#release(k, jobs);
        break;
      }
      let got = 0;
      for (let i = 0; i + 4 < jobs.length; i += 5) {
        got++;
        this.#start(k.index, sentAt + o.leaseMs - o.driftMs, jobs, i);
      }
      // Slots a fetch reserved and did not fill are free for the other partitions' loops.
      if (got < room) this.#wakeSlots();
      if (got < room && !this.#closing && nextDueMs !== 0) {
        await this.#idle(k, nextDueMs < 0 ? o.blockMs : Math.min(o.blockMs, nextDueMs), lastReady, lastWake);
      }
    }
  }

  /** One fetch script call. */
  #fetch(k: PartitionKeys, count: number): Promise<FetchReply> {
    const o = this.#opts;
    return runScript(this.#redis, queueScripts.fetch, k.all as never, [
      count,
      o.leaseMs,
      o.groupLimit,
      o.groupRules,
      o.retention.dead,
      o.retention.deadAgeMs,
      Math.random(),
      "SPUBLISH",
      k.channel,
    ]);
  }

  /** Blocks until the partition's ready or wake stream gets an entry after the given ids, or `blockMs` passes. */
  async #idle(k: PartitionKeys, blockMs: number, lastReady: string, lastWake: string): Promise<void> {
    let conn = this.#blocking[k.index];
    if (conn === undefined) {
      const own = { ...ownConnectionOptions(), commandTimeout: this.#opts.blockMs + 5_000 };
      conn = isCluster(this.#redis)
        ? this.#redis.duplicate([], { redisOptions: { ...this.#redis.options.redisOptions, ...own } })
        : this.#redis.duplicate(own);
      conn.on("error", () => {});
      this.#blocking[k.index] = conn;
    }
    try {
      await conn.xread("COUNT", 1, "BLOCK", Math.max(1, blockMs), "STREAMS", k.ready, k.wake, lastReady, lastWake);
    } catch (err) {
      if (this.#closing) return;
      this.#event("idle-error", { error: toCoordisError(err) });
      await sleep(FETCH_RETRY_MS, undefined, { signal: this.#stopper.signal }).catch(() => {});
    }
  }

  /** Starts the handler of the delivery at `jobs[i..i+4]` (id, fence, attempt, maxAttempts, data). */
  #start(partition: number, deadline: number, jobs: (string | number)[], i: number): void {
    const d = new Delivery<T>(
      {
        id: String(jobs[i]),
        fence: Number(jobs[i + 1]),
        attempt: Number(jobs[i + 2]),
        maxAttempts: Number(jobs[i + 3]),
        partition,
        deadline,
      },
      (job, value) => this.#progress(job, value),
    );
    this.#held.set(d.key, d);
    this.#running++;
    d.started = performance.now();
    let data: T;
    try {
      data = this.#opts.codec.decode(String(jobs[i + 4]));
    } catch (err) {
      this.#settle(d, "F", errorText(err));
      return;
    }
    d.data = data;
    let result: Promise<R> | R;
    try {
      result = this.#handler(d);
    } catch (err) {
      this.#settle(d, "f", errorText(err));
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        let text: string;
        try {
          text = this.#opts.resultCodec.encode(value);
          if (typeof text !== "string") throw new InvalidArgumentError("result", "the codec did not return a string");
          if (text.length * 3 > this.#opts.maxPayloadBytes && Buffer.byteLength(text) > this.#opts.maxPayloadBytes) {
            throw new InvalidArgumentError("result", `is larger than ${this.#opts.maxPayloadBytes} bytes once encoded`);
          }
        } catch (err) {
          this.#settle(d, "F", errorText(err));
          return;
        }
        this.#settle(d, "c", text);
      },
      (err: unknown) => this.#settle(d, "f", errorText(err)),
    );
  }

  /** The handler of `d` ended: its slot is free; its outcome is recorded unless the delivery was handed back. */
  #settle(d: Delivery<T>, kind: FinishKind, payload: string): void {
    const handlerMs = performance.now() - d.started;
    this.#running--;
    this.#wakeSlots();
    if (d.lostReason === "closing") {
      this.#report(d, "handed-back", handlerMs);
      return;
    }
    d.phase = "finishing";
    this.#finisher.finish(d.partition, d.id, d.fence, kind, payload).then(
      (status) => {
        this.#held.delete(d.key);
        this.#count(status);
        this.#report(d, status, handlerMs, kind === "c" ? undefined : payload);
        if (status === "dead")
          this.#event("job-dead", { attributes: { attempt: d.attempt }, error: new Error(payload) });
      },
      (err: unknown) => {
        this.#held.delete(d.key);
        this.#report(d, "error", handlerMs, undefined, toCoordisError(err));
      },
    );
  }

  #count(status: FinishStatus): void {
    if (status === "completed") this.#stats.completed++;
    else if (status === "retry") this.#stats.retried++;
    else if (status === "dead") this.#stats.dead++;
    else this.#stats.refused++;
  }

  #lost(d: Delivery<T>, reason: "lease-lost" | "cancelled"): void {
    if (!d.lose(reason)) return;
    this.#event("lease-lost", { attributes: { reason, attempt: d.attempt } });
  }

  async #progress(d: Delivery<T>, value: unknown): Promise<boolean> {
    const text = JSON.stringify(value);
    if (typeof text !== "string") throw new InvalidArgumentError("value", "expected a JSON value");
    if (text.length > 64 * 1024) throw new InvalidArgumentError("value", "at most 64 KiB of JSON");
    const k = this.#keys[d.partition] as PartitionKeys;
    return (await runScript(this.#redis, queueScripts.progress, [k.jobs, k.active], [d.id, d.fence, text])) === 1;
  }

  #report(d: Delivery<T>, outcome: string, durationMs: number, failure?: string, error?: Error): void {
    if (this.#opts.observer?.onOperation === undefined) return;
    notifyOperation(this.#opts.observer, {
      primitive: "queue",
      op: "process",
      outcome,
      durationMs,
      name: this.name,
      attributes: { attempt: d.attempt },
      ...(error !== undefined ? { error } : failure !== undefined ? { error: new Error(failure) } : {}),
    });
  }

  #event(type: string, extra: { error?: Error; attributes?: Record<string, string | number> }): void {
    notifyEvent(this.#opts.observer, {
      primitive: "queue",
      type,
      name: this.name,
      ...(extra.attributes === undefined ? {} : { attributes: extra.attributes }),
      ...(extra.error === undefined ? {} : { error: extra.error }),
    });
  }
}
