import { performance } from "node:perf_hooks";
import {
  Batcher,
  type BatchOutcome,
  type CoordisObserver,
  type Durability,
  InvalidArgumentError,
  notifyOperation,
  parseDurability,
  type RedisClient,
  randomToken,
  runScript,
  runScriptDurableOrThrow,
  runScriptDynamic,
  toCoordisError,
  validate,
} from "@coordis/core";
import { encodeArgument } from "./codec.js";
import { JobCancelledError, JobDeadError, JobNotFoundError } from "./errors.js";
import { type DeadLetter, type JobInfo, parseDeadPage, parseJobInfo, type QueueCounts } from "./job-info.js";
import { type PartitionKeys, partitionOf, queueKeys, schedulePartition, validateQueueName } from "./keys.js";
import {
  BASE_JOB,
  type JobOptions,
  jobArgs,
  jobOptionsText,
  MAX_ADD_MANY,
  onlyKeys,
  type ParsedCommon,
  type ParsedJob,
  parseBatch,
  parseCommon,
  parseJob,
  QUEUE_KEYS,
  type QueueOptions,
} from "./options.js";
import { checkPartitions, PartitionsGate } from "./partitions-check.js";
import { ResultWaiters } from "./results.js";
import { NEVER_MS, nextRunAfter, parseSpec, type ScheduleSpec, validateScheduleName } from "./schedules.js";
import { queueScripts } from "./scripts.generated.js";

/** What `add` answers. */
export interface AddResult {
  /** The job's id (the one given, or a generated one: 128 random bits as 22 base64url characters). */
  readonly id: string;
  /** True when a job with this id existed already: nothing was created. */
  readonly duplicate: boolean;
}

/** One queued add on its way to a batch. */
interface QueuedAdd {
  readonly id: string;
  readonly data: string;
  /** The job's options text (see jobOptionsText). */
  readonly options: string;
}

/** Most jobs one add script call carries. */
const MAX_ADD_SCRIPT = 1_000;

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
  readonly #redis: RedisClient;
  readonly #opts: ParsedCommon<T, R>;
  readonly #defaults: ParsedJob;
  readonly #keys: readonly PartitionKeys[];
  readonly #batcher: Batcher<QueuedAdd, boolean> | undefined;
  readonly #results: ResultWaiters;
  readonly #durability: Durability | undefined;
  readonly #gate: PartitionsGate;

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
    this.#opts = parseCommon(o);
    this.#defaults = parseJob("options.defaults", o.defaults, BASE_JOB, false);
    const batch = parseBatch("options.batch", o.batch);
    this.#durability = parseDurability("options.durability", o.durability, [redis]);
    this.#redis = redis;
    this.#keys = queueKeys(this.#opts.prefix, name, this.#opts.partitions);
    this.#batcher =
      batch === undefined
        ? undefined
        : new Batcher<QueuedAdd, boolean>(batch, (items, group) => this.#sendAdds(items, group as number));
    this.#results = new ResultWaiters(redis, this.#keys, name, this.#opts.observer);
    const { prefix, partitions } = this.#opts;
    this.#gate = new PartitionsGate(() => checkPartitions(redis, prefix, name, partitions));
  }

  /** The number of partitions. */
  get partitions(): number {
    return this.#opts.partitions;
  }

  /** The observer, for components sharing the queue's reporting. */
  get observer(): CoordisObserver | undefined {
    return this.#opts.observer;
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
   */
  async add(data: T, opts?: JobOptions): Promise<AddResult> {
    const start = performance.now();
    const item = this.#prepare(data, opts, "data", "opts");
    const partition = partitionOf(item.id, this.#opts.partitions);
    try {
      const gate = this.#gate.ready();
      if (gate !== undefined) await gate;
      const duplicate =
        this.#batcher === undefined
          ? ((await this.#sendAdds([item], partition))[0] as { ok: true; value: boolean }).value
          : await this.#batcher.add(partition, item);
      this.#report("add", duplicate ? "duplicate" : "added", start, { jobs: 1 });
      return { id: item.id, duplicate };
    } catch (err) {
      const error = toCoordisError(err);
      this.#report("add", "error", start, { jobs: 1 }, error);
      throw error;
    }
  }

  /**
   * Adds many jobs in one round trip: one script call per partition (and per 1,000 jobs), sent together. Every item is
   * validated before anything is sent.
   * @returns one result per item, in order
   * @throws InvalidArgumentError for a bad item (naming `items[i]...`) or more than 10,000 items
   * @throws DurabilityError with the `durability` option, when the replicas did not confirm a call in time (see
   *   {@link Queue.add}: every item was added on the primary; adding them again with the same ids is safe)
   */
  async addMany(items: ReadonlyArray<{ data: T; opts?: JobOptions }>): Promise<AddResult[]> {
    const start = performance.now();
    if (!Array.isArray(items)) throw new InvalidArgumentError("items", "expected an array of { data, opts? }");
    if (items.length > MAX_ADD_MANY) throw new InvalidArgumentError("items", `at most ${MAX_ADD_MANY} items`);
    const prepared = items.map((raw, i) => {
      const it = validate.options<{ data: T; opts?: JobOptions }>(`items[${i}]`, raw);
      if (raw === undefined) throw new InvalidArgumentError(`items[${i}]`, "expected { data, opts? }");
      onlyKeys(`items[${i}]`, it, ["data", "opts"]);
      return this.#prepare(it.data as T, it.opts, `items[${i}].data`, `items[${i}].opts`);
    });
    const byPartition = new Map<number, number[]>();
    prepared.forEach((item, i) => {
      const p = partitionOf(item.id, this.#opts.partitions);
      const list = byPartition.get(p);
      if (list === undefined) byPartition.set(p, [i]);
      else list.push(i);
    });
    const out = new Array<AddResult>(prepared.length);
    try {
      await this.#gate.ready();
      const calls: Promise<void>[] = [];
      for (const [p, indexes] of byPartition) {
        for (let from = 0; from < indexes.length; from += MAX_ADD_SCRIPT) {
          const chunk = indexes.slice(from, from + MAX_ADD_SCRIPT);
          calls.push(
            this.#sendAdds(
              chunk.map((i) => prepared[i] as QueuedAdd),
              p,
            ).then((outcomes) => {
              outcomes.forEach((o, j) => {
                const i = chunk[j] as number;
                out[i] = { id: (prepared[i] as QueuedAdd).id, duplicate: o.ok && o.value };
              });
            }),
          );
        }
      }
      await Promise.all(calls);
    } catch (err) {
      const error = toCoordisError(err);
      this.#report("add", "error", start, { jobs: prepared.length }, error);
      throw error;
    }
    this.#report("add", "added", start, { jobs: prepared.length, duplicates: out.filter((r) => r.duplicate).length });
    return out;
  }

  /**
   * A job's state, data, attempts, result or last error, progress and due time. One round trip.
   * @returns null when no such job exists (never added, or removed by retention)
   */
  async get(id: string): Promise<JobInfo<T, R> | null> {
    validate.string("id", id, { maxBytes: 1024 });
    await this.#gate.ready();
    const k = this.#partitionKeys(id);
    const reply = await runScript(
      this.#redis,
      queueScripts.get,
      [k.jobs, k.active, k.delayed, k.done, k.cancelled],
      [id],
    );
    return parseJobInfo(id, reply, this.#opts.codec, this.#opts.resultCodec);
  }

  /**
   * Waits for a job's result: resolves when it completed, rejects with JobDeadError when it died, JobCancelledError
   * when cancelled, JobNotFoundError when it does not exist, ResultTimeoutError after `timeoutMs` (default: no limit).
   * No polling loop: it wakes when the job's completion is announced (sharded pub/sub), with a check every 5 s as a
   * fallback.
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
      return new Promise<R>((resolve, reject) => {
        const check = async (): Promise<boolean> => {
          const info = await this.get(id);
          if (info === null) throw new JobNotFoundError(id);
          if (info.state === "completed") resolve(info.result as R);
          else if (info.state === "dead") throw new JobDeadError(id, info.attempts, info.error ?? "");
          else if (info.state === "cancelled") throw new JobCancelledError(id);
          else return false;
          return true;
        };
        const partition = partitionOf(id, this.#opts.partitions);
        this.#results
          .wait(id, partition, timeoutMs, check, reject)
          .catch((err: unknown) => reject(toCoordisError(err)));
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Cancels a job that has not finished: a waiting or delayed job will not run; a running job's `signal` aborts (its
   * worker learns it at the next lease renewal) and whatever its handler finishes is refused. One round trip.
   * @returns true when the job was cancelled, false when it had finished already or does not exist
   */
  async cancel(id: string): Promise<boolean> {
    const start = performance.now();
    validate.string("id", id, { maxBytes: 1024 });
    await this.#gate.ready();
    const k = this.#partitionKeys(id);
    const reply = await runScript(this.#redis, queueScripts.cancel, k.all as never, [
      id,
      this.#opts.retention.completed,
      "SPUBLISH",
      k.channel,
    ]);
    this.#report("cancel", reply === 1 ? "cancelled" : "not-found", start);
    return reply === 1;
  }

  /** Jobs by state, summed over partitions (one script call per partition, sent together). */
  async counts(): Promise<QueueCounts> {
    await this.#gate.ready();
    const replies = await Promise.all(
      this.#keys.map((k) =>
        runScript(
          this.#redis,
          queueScripts.counts,
          [k.ready, k.prio, k.gwait, k.delayed, k.active, k.done, k.dead, k.cancelled, k.meta],
          [],
        ),
      ),
    );
    const c = { waiting: 0, delayed: 0, active: 0, completed: 0, dead: 0, cancelled: 0, paused: false };
    for (const [waiting, delayed, active, completed, dead, cancelled, paused] of replies) {
      c.waiting += waiting;
      c.delayed += delayed;
      c.active += active;
      c.completed += completed;
      c.dead += dead;
      c.cancelled += cancelled;
      c.paused ||= paused === 1;
    }
    return c;
  }

  /**
   * Declares a schedule, stored in Redis: any number of replicas may declare the same one, and each run makes exactly
   * one job fleet-wide (id `{schedule:<name>}<run time ms>`), fired by any running {@link Worker} on Redis server
   * time. Runs missed while no worker ran are coalesced: one job for the first missed run, then the schedule goes on
   * from the next run after now. Redeclaring with other timing, data or options replaces the schedule.
   * Two round trips (the server's clock, then the declaration).
   * @returns true when the schedule was new or changed, false when it was declared identically already
   */
  async schedule(
    name: string,
    spec: ScheduleSpec,
    data: T,
    opts?: Omit<JobOptions, "id" | "delayMs">,
  ): Promise<boolean> {
    validateScheduleName(name);
    const parsed = parseSpec("spec", spec);
    const job = parseJob("opts", opts, this.#defaults, false);
    if (opts !== undefined && (opts as JobOptions).delayMs !== undefined) {
      throw new InvalidArgumentError("opts.delayMs", "a scheduled job runs at its run time: no delayMs");
    }
    const encoded = encodeArgument(this.#opts.codec, "data", data, this.#opts.maxPayloadBytes);
    const stored = JSON.stringify({ spec: parsed, job: jobArgs({ ...job, delayMs: 0 }, encoded) });
    await this.#gate.ready();
    const k = this.#keys[schedulePartition(name, this.#opts.partitions)] as PartitionKeys;
    const [sec, usec] = await this.#redis.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const nextAt = nextRunAfter(parsed, now) ?? NEVER_MS;
    return (await runScript(this.#redis, queueScripts.scheduleSet, [k.sched, k.schedz], [name, stored, nextAt])) === 1;
  }

  /** Removes a schedule (jobs it made already stay). @returns whether it existed */
  async unschedule(name: string): Promise<boolean> {
    validateScheduleName(name);
    await this.#gate.ready();
    const k = this.#keys[schedulePartition(name, this.#opts.partitions)] as PartitionKeys;
    return (await runScript(this.#redis, queueScripts.unschedule, [k.sched, k.schedz], [name])) === 1;
  }

  /**
   * A page of dead letters (oldest death first), with their last errors. Pass the returned `cursor` to read the next
   * page; it is absent on the last one.
   */
  async deadLetters(options?: {
    limit?: number;
    cursor?: string;
  }): Promise<{ jobs: DeadLetter<T>[]; cursor?: string }> {
    const o = validate.options<{ limit?: number; cursor?: string }>("options", options);
    onlyKeys("options", o, ["limit", "cursor"]);
    const limit = validate.optional(o.limit, 100, (v) => validate.positiveInteger("options.limit", v, 1_000));
    let partition = 0;
    let offset = 0;
    if (o.cursor !== undefined) {
      const m = /^(\d{1,3}):(\d{1,9})$/.exec(validate.string("options.cursor", o.cursor, { maxBytes: 16 }));
      if (m === null || Number(m[1]) >= this.#opts.partitions) {
        throw new InvalidArgumentError("options.cursor", "not a cursor returned by deadLetters()");
      }
      partition = Number(m[1]);
      offset = Number(m[2]);
    }
    const jobs: DeadLetter<T>[] = [];
    await this.#gate.ready();
    while (partition < this.#opts.partitions && jobs.length < limit) {
      const k = this.#keys[partition] as PartitionKeys;
      const want = limit - jobs.length;
      const reply = await runScript(this.#redis, queueScripts.deadLetters, [k.dead, k.jobs], [offset, want]);
      const { total, page } = parseDeadPage(reply, this.#opts.codec);
      jobs.push(...page);
      offset += want;
      if (offset >= total) {
        partition++;
        offset = 0;
      }
    }
    return partition < this.#opts.partitions ? { jobs, cursor: `${partition}:${offset}` } : { jobs };
  }

  /** Moves a dead job back to the queue with a fresh set of attempts. @returns false when it is not a dead letter */
  async retryDead(id: string): Promise<boolean> {
    validate.string("id", id, { maxBytes: 1024 });
    await this.#gate.ready();
    const k = this.#partitionKeys(id);
    return (await runScript(this.#redis, queueScripts.retryDead, k.all as never, [id])) === 1;
  }

  /** Pauses the whole queue: workers start no new job (running ones go on) until {@link Queue.resume}. */
  async pause(): Promise<void> {
    await this.#gate.ready();
    await Promise.all(this.#keys.map((k) => runScript(this.#redis, queueScripts.pause, [k.meta, k.wake], [1])));
  }

  /** Resumes a paused queue; waiting workers wake at once. */
  async resume(): Promise<void> {
    await this.#gate.ready();
    await Promise.all(this.#keys.map((k) => runScript(this.#redis, queueScripts.pause, [k.meta, k.wake], [0])));
  }

  /**
   * Sends queued adds now and closes the connection `result()` opened (the `redis` client is not closed). Resolves
   * within 1 s even when Redis cannot be reached (the connection is then destroyed). `result()` calls still waiting go
   * on with their periodic checks through the `redis` client.
   */
  async close(): Promise<void> {
    this.#batcher?.flush();
    await this.#results.close();
  }

  #partitionKeys(id: string): PartitionKeys {
    return this.#keys[partitionOf(id, this.#opts.partitions)] as PartitionKeys;
  }

  #prepare(data: T, opts: JobOptions | undefined, dataArg: string, optsArg: string): QueuedAdd {
    const job = parseJob(optsArg, opts, this.#defaults);
    const encoded = encodeArgument(this.#opts.codec, dataArg, data, this.#opts.maxPayloadBytes);
    return { id: job.id ?? randomToken(), data: encoded, options: jobOptionsText(job) };
  }

  async #sendAdds(items: readonly QueuedAdd[], partition: number): Promise<BatchOutcome<boolean>[]> {
    const k = this.#keys[partition] as PartitionKeys;
    // Three arguments per job; options equal to the previous job's are sent as '' (parsed once by the script).
    const args: (string | number)[] = [items.length];
    let options: string | undefined;
    for (const item of items) {
      args.push(item.id, item.data, item.options === options ? "" : item.options);
      options = item.options;
    }
    const keys = [k.jobs, k.ready, k.delayed, k.prio, k.wake] as const;
    const reply =
      this.#durability === undefined
        ? await runScriptDynamic(this.#redis, queueScripts.add, keys, args)
        : await runScriptDurableOrThrow(this.#redis, queueScripts.add, keys, args as never, this.#durability);
    return reply.map((dup) => ({ ok: true, value: dup === 1 }));
  }

  #report(op: string, outcome: string, start: number, attributes?: Record<string, number>, error?: Error): void {
    if (this.#opts.observer?.onOperation === undefined) return;
    notifyOperation(this.#opts.observer, {
      primitive: "queue",
      op,
      outcome,
      durationMs: performance.now() - start,
      name: this.name,
      ...(attributes === undefined ? {} : { attributes }),
      ...(error === undefined ? {} : { error }),
    });
  }
}
