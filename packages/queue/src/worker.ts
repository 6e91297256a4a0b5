import { setTimeout as sleep } from "node:timers/promises";
import { type RedisClient, toCoordisError, validate } from "@coordis/core";
import { DeliveryRunner, type Handler } from "./delivery-runner.js";
import { PartitionsMismatchError } from "./errors.js";
import { FETCH_RETRY_MS, FetchLoops } from "./fetch-loop.js";
import { Finisher } from "./finisher.js";
import { GroupSweeper } from "./group-sweeper.js";
import { queueKeys, validateQueueName } from "./keys.js";
import { LeaseKeeper } from "./lease-keeper.js";
import { checkPartitions } from "./partitions-check.js";
import { Scheduler } from "./scheduler.js";
import { CLOSE_GRACE_MS, type CloseOptions, until } from "./worker-close.js";
import { type WorkerContext, workerEvent } from "./worker-context.js";
import { onlyKeys, parseWorker, WORKER_KEYS, type WorkerOptions } from "./worker-options.js";

export type { Handler } from "./delivery-runner.js";

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
  readonly #w: WorkerContext<T, R>;
  readonly #stopper = new AbortController();
  readonly #finisher: Finisher;
  readonly #runner: DeliveryRunner<T, R>;
  readonly #fetcher: FetchLoops<T, R>;
  readonly #leases: LeaseKeeper<T>;
  readonly #scheduler: Scheduler | undefined;
  readonly #sweeper: GroupSweeper | undefined;
  #closed: Promise<void> | undefined;
  /** True once the partition count was checked against the queue's; false when it differs or the worker closed first. */
  readonly #checked: Promise<boolean>;
  #mismatch: PartitionsMismatchError | undefined;

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
    const run = validate.func<Handler<T, R>>("handler", handler);
    const o = validate.options<WorkerOptions<T, R>>("options", options);
    onlyKeys("options", o, WORKER_KEYS);
    const opts = parseWorker(redis, o);
    const keys = queueKeys(opts.prefix, name, opts.partitions);
    const stats = { completed: 0, retried: 0, dead: 0, refused: 0, handedBack: 0 };
    this.#w = { redis, name, opts, keys, stats, closing: this.#stopper.signal };
    const { retention } = opts;
    this.#finisher = new Finisher(
      redis,
      keys,
      { maxDone: retention.completed, maxDead: retention.dead, deadAgeMs: retention.deadAgeMs },
      opts.leaseMs,
    );
    const runner = new DeliveryRunner<T, R>(this.#w, run, this.#finisher);
    this.#runner = runner;
    this.#leases = new LeaseKeeper<T>(redis, keys, runner.held, opts.leaseMs, (d, reason) => runner.lost(d, reason));
    this.#fetcher = new FetchLoops<T, R>(this.#w, runner);
    this.#scheduler = opts.schedules ? new Scheduler(redis, keys, name, opts.observer) : undefined;
    this.#sweeper = opts.groupRules === "" ? undefined : new GroupSweeper(this.#w as WorkerContext<unknown, unknown>);
    this.#checked = this.#checkPartitions();
    this.#fetcher.start(this.#checked);
    this.#leases.start();
    void this.#checked.then((ok) => {
      if (ok && !this.#closing) {
        this.#scheduler?.start();
        this.#sweeper?.start();
      }
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
    const { redis, opts } = this.#w;
    while (!this.#closing) {
      try {
        await checkPartitions(redis, opts.prefix, this.name, opts.partitions);
        return true;
      } catch (err) {
        if (err instanceof PartitionsMismatchError) {
          this.#mismatch = err;
          workerEvent(this.#w, "partitions-mismatch", { error: err });
          return false;
        }
        workerEvent(this.#w, "fetch-error", { error: toCoordisError(err) });
        await sleep(FETCH_RETRY_MS, undefined, { signal: this.#stopper.signal }).catch(() => {});
      }
    }
    return false;
  }

  /** Counters of this worker since it started. */
  stats(): { completed: number; retried: number; dead: number; refused: number; handedBack: number; running: number } {
    return { ...this.#w.stats, running: this.#runner.running };
  }

  /**
   * Stops fetching at once, lets running handlers finish for up to `timeoutMs`, then hands the jobs still running back
   * to the queue in one call per partition (they are fetched again at once by other workers, no lease to wait for;
   * their `signal` aborts and whatever their handlers finish later is refused). Resolves when every outcome is
   * recorded and the worker's own connections are closed (the `redis` client is not). Idempotent. Bad options reject
   * the returned promise with InvalidArgumentError (the worker is not closed by that call).
   *
   * Bounded: it resolves within `timeoutMs` + {@link CLOSE_GRACE_MS} whatever Redis does. When Redis cannot be
   * reached (or the client is stuck reconnecting), the jobs that could not be handed back and the outcomes that could
   * not be recorded by then are left to their leases: those jobs are delivered again once their leases expire. A
   * fetch still in flight that answers later has its jobs handed back at once, never started.
   */
  close(options?: CloseOptions): Promise<void> {
    let timeoutMs: number;
    try {
      const o = validate.options<CloseOptions>("options", options);
      onlyKeys("options", o, ["timeoutMs"]);
      timeoutMs = validate.optional(o.timeoutMs, 30_000, (v) =>
        validate.durationMs("options.timeoutMs", v, { min: 0, max: 24 * 60 * 60 * 1000 }),
      );
    } catch (err) {
      // A promise-returning method: bad options reject it (as Queue.result does), they do not throw.
      return Promise.reject(err);
    }
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
    const disconnected = this.#fetcher.disconnect();
    this.#runner.wakeSlots();
    const scheduler = Promise.all([this.#scheduler?.stop(), this.#sweeper?.stop()]);
    await this.#runner.whenIdle(deadline);
    await until(this.#runner.handBack(), hardDeadline);
    // Fetches in flight hand what they bring back themselves (the loop sees the worker closing).
    await until(Promise.all([this.#fetcher.done(), scheduler, this.#finisher.drain()]), hardDeadline);
    this.#finisher.abandon();
    this.#leases.stop();
    await until(disconnected, Math.max(hardDeadline, performance.now() + 1));
  }
}
