import { performance } from "node:perf_hooks";
import {
  Batcher,
  ClosedError,
  type CoordisObserver,
  InvalidArgumentError,
  parseDurability,
  type RedisClient,
  toCoordisError,
  validate,
} from "@coordis/core";
import { type AddResult, prepareAdd, type QueuedAdd, sendAdds, sendAddsAll } from "./adds.js";
import { encodeArgument } from "./codec.js";
import type { DeadLetter, JobInfo, QueueCounts } from "./job-info.js";
import { partitionOf, queueKeys, validateQueueName } from "./keys.js";
import {
  BASE_JOB,
  type JobOptions,
  MAX_ADD_MANY,
  onlyKeys,
  parseBatch,
  parseCommon,
  parseJob,
  QUEUE_KEYS,
  type QueueOptions,
} from "./options.js";
import { checkPartitions, PartitionsGate } from "./partitions-check.js";
import { type QueueContext, reportQueueOp } from "./queue-context.js";
import { declareSchedule, removeSchedule, setPaused } from "./queue-control.js";
import { cancelJob, countJobs, readDeadLetters, readJob, retryDeadJob, waitResult } from "./queue-jobs.js";
import { ResultWaiters } from "./results.js";
import { parseSpec, type ScheduleSpec, validateScheduleName, validateStoredScheduleName } from "./schedules.js";

export type { AddResult } from "./adds.js";

/**
 * The producer side of a job queue on Redis: adds jobs (idempotently by id, delayed on Redis server time, with
 * priorities, retries and groups), reads their state and results, cancels them, declares schedules and manages dead
 * letters. Jobs are run by {@link Worker}s of the same name.
 *
 * Keys: every key of one queue shares the hash tag `{<name>}` (`{<name>#<i>}` per partition with `partitions`), so the
 * queue runs unchanged on Redis Cluster.
 *
 * @example
 * const emails = new Queue<{ to: string }>(redis, "emails");
 * const { id } = await emails.add({ to: "a@example.com" }, { attempts: 5, delayMs: 60_000 });
 */
export class Queue<T = unknown, R = unknown> {
  /** The queue's name. */
  readonly name: string;
  readonly #q: QueueContext<T, R>;
  readonly #batcher: Batcher<QueuedAdd, boolean> | undefined;
  readonly #results: ResultWaiters;
  #closed = false;

  /**
   * @param redis an ioredis `Redis` or `Cluster`
   * @param name the queue's name: 1–500 UTF-8 bytes, no `{` or `}`
   * @param options see {@link QueueOptions}
   * @throws InvalidArgumentError for a bad argument (no Redis call is made)
   */
  constructor(redis: RedisClient, name: string, options: QueueOptions<T, R> = {}) {
    validate.redisClient("redis", redis);
    this.name = validateQueueName(name);
    const o = validate.options<QueueOptions<T, R>>("options", options);
    onlyKeys("options", o, QUEUE_KEYS);
    const opts = parseCommon<T, R>(o);
    const defaults = parseJob("options.defaults", o.defaults, BASE_JOB, false);
    const batch = parseBatch("options.batch", o.batch);
    const durability = parseDurability("options.durability", o.durability, [redis]);
    const keys = queueKeys(opts.prefix, name, opts.partitions);
    const { prefix, partitions } = opts;
    const gate = new PartitionsGate(() => checkPartitions(redis, prefix, name, partitions));
    const q: QueueContext<T, R> = { redis, name, opts, defaults, keys, durability, gate };
    this.#q = q;
    this.#batcher =
      batch === undefined
        ? undefined
        : new Batcher<QueuedAdd, boolean>(batch, (items, group) => sendAdds(q, items, group as number));
    this.#results = new ResultWaiters(redis, keys, name, opts.observer);
  }

  /** The number of partitions. */
  get partitions(): number {
    return this.#q.opts.partitions;
  }

  /** The observer, for components sharing the queue's reporting. */
  get observer(): CoordisObserver | undefined {
    return this.#q.opts.observer;
  }

  /**
   * Adds a job: one script call (micro-batched with the adds of the same event-loop turn unless `batch: false`).
   * @returns its id, and `duplicate: true` when `opts.id` existed already (nothing was created)
   * @throws InvalidArgumentError for bad options or data the codec cannot encode, larger than `maxPayloadBytes`
   * @throws RedisUnavailableError when Redis cannot be reached (the job may or may not have been added: add it again
   *   with the same `id` to be sure it exists once)
   * @throws DurabilityError with the `durability` option, when the replicas did not confirm the add in time: the job
   *   was added on the primary and may or may not survive a failover; adding it again with the same `id` is safe
   *   (`duplicate: true` means it survived)
   * @throws PartitionsMismatchError when the queue was created with another `partitions`
   * @throws ClosedError after {@link Queue.close} (nothing is sent)
   */
  async add(data: T, opts?: JobOptions): Promise<AddResult> {
    const start = performance.now();
    this.#assertOpen();
    const q = this.#q;
    const item = prepareAdd(q, data, opts, "data", "opts");
    const partition = partitionOf(item.id, q.opts.partitions);
    try {
      const gate = q.gate.ready();
      if (gate !== undefined) await gate;
      const duplicate =
        this.#batcher === undefined
          ? ((await sendAdds(q, [item], partition))[0] as { ok: true; value: boolean }).value
          : await this.#batcher.add(partition, item);
      reportQueueOp(q, "add", duplicate ? "duplicate" : "added", start, { jobs: 1 });
      return { id: item.id, duplicate };
    } catch (err) {
      const error = toCoordisError(err);
      reportQueueOp(q, "add", "error", start, { jobs: 1 }, error);
      throw error;
    }
  }

  /**
   * Adds many jobs in one round trip: one script call per partition (and per 1,000 jobs), sent together, after the
   * `add()` calls made before it (their micro-batch is sent first). Every item is
   * validated before anything is sent.
   * @returns one result per item, in order
   * @throws InvalidArgumentError for a bad item (naming `items[i]...`) or more than 10,000 items
   * @throws DurabilityError with the `durability` option, when the replicas did not confirm a call in time (see
   *   {@link Queue.add}: every item was added on the primary; adding them again with the same ids is safe)
   * @throws ClosedError after {@link Queue.close} (nothing is sent)
   */
  async addMany(items: ReadonlyArray<{ data: T; opts?: JobOptions }>): Promise<AddResult[]> {
    const start = performance.now();
    this.#assertOpen();
    if (!Array.isArray(items)) throw new InvalidArgumentError("items", "expected an array of { data, opts? }");
    if (items.length > MAX_ADD_MANY) throw new InvalidArgumentError("items", `at most ${MAX_ADD_MANY} items`);
    // Array.from visits holes (a sparse array's missing items), which map would skip: each is refused below.
    const prepared = Array.from(items, (raw, i) => {
      const it = validate.options<{ data: T; opts?: JobOptions }>(`items[${i}]`, raw);
      if (raw === undefined) throw new InvalidArgumentError(`items[${i}]`, "expected { data, opts? }");
      onlyKeys(`items[${i}]`, it, ["data", "opts"]);
      return prepareAdd(this.#q, it.data as T, it.opts, `items[${i}].data`, `items[${i}].opts`);
    });
    let out: AddResult[];
    try {
      const gate = this.#q.gate.ready();
      if (gate !== undefined) await gate;
      // After the adds already queued (micro-batched) by this Queue: one producer's jobs keep their order.
      this.#batcher?.flush();
      out = await sendAddsAll(this.#q, prepared);
    } catch (err) {
      const error = toCoordisError(err);
      reportQueueOp(this.#q, "add", "error", start, { jobs: prepared.length }, error);
      throw error;
    }
    const duplicates = out.filter((r) => r.duplicate).length;
    reportQueueOp(this.#q, "add", "added", start, { jobs: prepared.length, duplicates });
    return out;
  }

  /**
   * A job's state, data, attempts, result or last error, progress and due time. One round trip.
   * @returns null when no such job exists (never added, or removed by retention)
   */
  async get(id: string): Promise<JobInfo<T, R> | null> {
    validate.string("id", id, { maxBytes: 1024 });
    return readJob(this.#q, id);
  }

  /**
   * Waits for a job's result: resolves when it completed, rejects with JobDeadError when it died, JobCancelledError
   * when cancelled, JobNotFoundError when it does not exist, ResultTimeoutError after `timeoutMs` (default: no limit).
   * No polling loop: it wakes when the job's completion is announced (sharded pub/sub), with a check every 5 s as a
   * fallback. Rejects with RedisUnavailableError when Redis cannot be reached at the call; once it has looked at the
   * job, an outage does not end the wait (each failed look is reported as the event `result-error`).
   */
  result(id: string, options?: { timeoutMs?: number }): Promise<R> {
    try {
      validate.string("id", id, { maxBytes: 1024 });
      const o = validate.options<{ timeoutMs?: number }>("options", options);
      onlyKeys("options", o, ["timeoutMs"]);
      const timeoutMs =
        o.timeoutMs === undefined
          ? undefined
          : validate.durationMs("options.timeoutMs", o.timeoutMs, { max: 2 ** 31 - 1 });
      return waitResult(this.#q, this.#results, id, timeoutMs);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Cancels a job that has not finished: a waiting or delayed job will not run; a running job's `signal` aborts (its
   * worker learns it at the next lease renewal) and whatever its handler finishes is refused. One round trip.
   * @returns true when the job was cancelled, false when it had finished already or does not exist
   * @throws ClosedError after {@link Queue.close}
   */
  async cancel(id: string): Promise<boolean> {
    const start = performance.now();
    this.#assertOpen();
    validate.string("id", id, { maxBytes: 1024 });
    const cancelled = await cancelJob(this.#q, id);
    reportQueueOp(this.#q, "cancel", cancelled ? "cancelled" : "not-found", start);
    return cancelled;
  }

  /** Jobs by state, summed over partitions (one script call per partition, sent together). */
  counts(): Promise<QueueCounts> {
    return countJobs(this.#q);
  }

  /**
   * Declares a schedule, stored in Redis: any number of replicas may declare the same one, and each run makes exactly
   * one job fleet-wide (id `{schedule:<name>}<run time ms>`), fired by any running {@link Worker} on Redis server
   * time. Runs missed while no worker ran are coalesced: one job for the first missed run, then the schedule goes on
   * from the next run after now. Redeclaring with other timing, data or options replaces the schedule (a run due
   * already and not made yet is still made, with the new declaration).
   * Two round trips (the server's clock, then the declaration).
   * @returns true when the schedule was new or changed (or stored again whole: Redis had lost its next run time),
   *   false when it was declared identically already
   * @throws ClosedError after {@link Queue.close}
   */
  async schedule(
    name: string,
    spec: ScheduleSpec,
    data: T,
    opts?: Omit<JobOptions, "id" | "delayMs">,
  ): Promise<boolean> {
    this.#assertOpen();
    validateScheduleName(name);
    const parsed = parseSpec("spec", spec);
    const job = parseJob("opts", opts, this.#q.defaults, false);
    if (opts !== undefined && (opts as JobOptions).delayMs !== undefined) {
      throw new InvalidArgumentError("opts.delayMs", "a scheduled job runs at its run time: no delayMs");
    }
    const encoded = encodeArgument(this.#q.opts.codec, "data", data, this.#q.opts.maxPayloadBytes);
    return declareSchedule(this.#q, name, parsed, job, encoded);
  }

  /** Removes a schedule (jobs it made already stay). @returns whether it existed @throws ClosedError after close() */
  async unschedule(name: string): Promise<boolean> {
    this.#assertOpen();
    validateStoredScheduleName(name);
    return removeSchedule(this.#q, name);
  }

  /**
   * A page of dead letters (oldest death first, partition by partition), with their last errors. Pass the returned
   * `cursor` to read the next page; it is absent on the last one. The cursor names the last dead letter read, so a walk
   * that retries (or loses to retention) the jobs of a page before reading the next one misses none of the others (a job
   * that dies again meanwhile is read again, after the deaths before it, unless the walk has left its partition).
   */
  async deadLetters(options?: {
    limit?: number;
    cursor?: string;
  }): Promise<{ jobs: DeadLetter<T>[]; cursor?: string }> {
    const o = validate.options<{ limit?: number; cursor?: string }>("options", options);
    onlyKeys("options", o, ["limit", "cursor"]);
    const limit = validate.optional(o.limit, 100, (v) => validate.positiveInteger("options.limit", v, 1_000));
    if (o.cursor === undefined) return readDeadLetters(this.#q, limit, 0, { score: "", id: "" });
    // "<partition>:<time of death>:<id>" of the last entry read, or "<partition>::" at a partition's start.
    const m = /^(\d{1,3}):(?:(\d{1,16}(?:\.\d{1,17})?):(.+)|:)$/s.exec(
      validate.string("options.cursor", o.cursor, { maxBytes: 1_100 }),
    );
    if (m === null || Number(m[1]) >= this.#q.opts.partitions) {
      throw new InvalidArgumentError("options.cursor", "not a cursor returned by deadLetters()");
    }
    return readDeadLetters(this.#q, limit, Number(m[1]), { score: m[2] ?? "", id: m[3] ?? "" });
  }

  /**
   * Moves a dead job back to the queue with a fresh set of attempts. @returns false when it is not a dead letter
   * @throws ClosedError after {@link Queue.close}
   */
  async retryDead(id: string): Promise<boolean> {
    this.#assertOpen();
    validate.string("id", id, { maxBytes: 1024 });
    return retryDeadJob(this.#q, id);
  }

  /**
   * Pauses the whole queue: workers start no new job (running ones go on) until {@link Queue.resume}.
   * @throws ClosedError after {@link Queue.close}
   */
  async pause(): Promise<void> {
    this.#assertOpen();
    return setPaused(this.#q, 1);
  }

  /** Resumes a paused queue; waiting workers wake at once. @throws ClosedError after {@link Queue.close} */
  async resume(): Promise<void> {
    this.#assertOpen();
    return setPaused(this.#q, 0);
  }

  /**
   * Ends this Queue's use for adding and changing jobs: adds already called (also those still in the micro-batch or
   * waiting for the queue's first check) are sent, and the connection `result()` opened is closed (the `redis` client
   * is not: keep it open until the adds called before close() have settled). Resolves within 1 s even when Redis
   * cannot be reached (the connection is then destroyed). Afterwards `add`, `addMany`, `cancel`, `schedule`,
   * `unschedule`, `retryDead`, `pause` and `resume` reject with ClosedError (nothing is sent), while the reads go on:
   * `get`, `counts`, `deadLetters`, and `result()` (calls still waiting go on with their periodic checks through the
   * `redis` client, and so do calls made after close(): no connection is opened again, they look at the job at once,
   * then every 5 s). Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#batcher?.flush();
    await this.#results.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError("Queue");
  }
}
