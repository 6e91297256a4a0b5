import {
  encodeText,
  faithfulJsonText,
  InvalidArgumentError,
  notifyOperation,
  runScript,
  toCoordisError,
  validate,
} from "@coordis/core";
import { overBytes } from "./codec.js";
import { isUnrecoverable, JobLostError } from "./errors.js";
import type { Finisher, FinishKind, FinishStatus } from "./finisher.js";
import { Delivery, type Job } from "./job.js";
import type { PartitionKeys } from "./keys.js";
import { queueScripts } from "./scripts.generated.js";
import { errorText } from "./worker-close.js";
import { type WorkerContext, type WorkerStats, workerEvent } from "./worker-context.js";
import type { ParsedWorker } from "./worker-options.js";

/** Largest progress value, bytes of its JSON text in UTF-8: 64 KiB. */
export const MAX_PROGRESS_BYTES = 64 * 1024;

/**
 * Runs one job; resolve with its result, throw to fail the attempt (retried after the backoff, then dead). Throw an
 * `UnrecoverableError` to fail it without a retry: the job is dead after this attempt.
 */
export type Handler<T, R> = (job: Job<T>) => Promise<R> | R;

/**
 * Runs a worker's deliveries, from fetch until their outcome is recorded: decodes the data, runs the handler in one of
 * `concurrency` slots, encodes the result, hands the outcome to the Finisher, stores progress, aborts a delivery whose
 * lease was lost, and on close hands the deliveries still running back to the queue. Internal.
 */
export class DeliveryRunner<T, R> {
  readonly #w: WorkerContext<T, R>;
  readonly #opts: ParsedWorker<T, R>;
  readonly #handler: Handler<T, R>;
  readonly #finisher: Finisher;
  readonly #stats: WorkerStats;
  /** Deliveries held, running or finishing, by `<partition>\n<id>`. */
  readonly #held = new Map<string, Delivery<T>>();
  #running = 0;
  #slotWaiters: Array<() => void> = [];

  constructor(w: WorkerContext<T, R>, handler: Handler<T, R>, finisher: Finisher) {
    this.#w = w;
    this.#opts = w.opts;
    this.#handler = handler;
    this.#finisher = finisher;
    this.#stats = w.stats;
  }

  /** Deliveries held, running or finishing (their leases are renewed). */
  get held(): ReadonlyMap<string, Delivery<T>> {
    return this.#held;
  }

  /** Handlers running. */
  get running(): number {
    return this.#running;
  }

  /** Resolves the next time a handler slot frees (or {@link DeliveryRunner.wakeSlots} is called). */
  slotFreed(): Promise<void> {
    return new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
  }

  /** Wakes whoever waits for a slot. */
  wakeSlots(): void {
    if (this.#slotWaiters.length === 0) return;
    const waiters = this.#slotWaiters;
    this.#slotWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once no handler runs, or at `deadline` (`performance.now()` base). */
  async whenIdle(deadline: number): Promise<void> {
    while (this.#running > 0 && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - performance.now()));
        this.#slotWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Starts the handler of the delivery at `jobs[i..i+4]` (id, fence, attempt, maxAttempts, data). */
  start(partition: number, deadline: number, jobs: (string | number)[], i: number): void {
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
    // An earlier delivery of the same job still held here (its handler outlived its lease, or its outcome is still on
    // its way) is stale: the job was reclaimed and handed out again. It ends now; its end must not drop this one.
    const stale = this.#held.get(d.key);
    if (stale !== undefined) this.lost(stale, "lease-lost");
    this.#held.set(d.key, d);
    this.#running++;
    d.started = performance.now();
    if (d.started >= deadline) {
      // The lease passed before the handler could start (the event loop was blocked, or the process stopped, while the
      // fetch's reply waited): the job may run elsewhere already. Not started; the attempt ends as a lost lease's.
      this.lost(d, "lease-lost");
      this.#settle(d, "f", errorText(new JobLostError(d.id, d.fence, "lease-lost")));
      return;
    }
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
      this.#settle(d, failure(err), errorText(err));
      return;
    }
    Promise.resolve(result).then(
      (value) => {
        let text: string;
        try {
          text = encodeText(this.#opts.resultCodec, value, "result");
          if (overBytes(text, this.#opts.maxPayloadBytes)) {
            throw new InvalidArgumentError("result", `is larger than ${this.#opts.maxPayloadBytes} bytes once encoded`);
          }
        } catch (err) {
          this.#settle(d, "F", errorText(err));
          return;
        }
        this.#settle(d, "c", text);
      },
      (err: unknown) => this.#settle(d, failure(err), errorText(err)),
    );
  }

  /** Ends `d` early (lease lost or job cancelled): its signal aborts and its outcome will be refused. */
  lost(d: Delivery<T>, reason: "lease-lost" | "cancelled"): void {
    if (!d.lose(reason)) return;
    workerEvent(this.#w, "lease-lost", { attributes: { reason, attempt: d.attempt } });
  }

  /** Hands every delivery whose handler still runs back to the queue (the worker is closing). */
  async handBack(): Promise<void> {
    const { redis, keys } = this.#w;
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
        const k = keys[p] as PartitionKeys;
        const args = list.flatMap((d) => [d.id, d.fence]);
        try {
          const n = await runScript(redis, queueScripts.release, k.all as never, args as never);
          this.#stats.handedBack += n;
        } catch (err) {
          // Not handed back: their leases expire and they are reclaimed as usual.
          workerEvent(this.#w, "release-error", { error: toCoordisError(err) });
        }
        for (const d of list) this.#release(d);
      }),
    );
  }

  /** The handler of `d` ended: its slot is free; its outcome is recorded unless the delivery was handed back. */
  #settle(d: Delivery<T>, kind: FinishKind | "u", payload: string): void {
    const handlerMs = performance.now() - d.started;
    this.#running--;
    this.wakeSlots();
    if (d.lostReason === "closing") {
      this.#report(d, "handed-back", handlerMs);
      return;
    }
    // A handler that returned past the lease (its event loop blocked, its process stopped) before the lease keeper
    // had a turn to learn it: the delivery is lost all the same, as it would be a moment later.
    if (d.lostReason === undefined && performance.now() >= d.deadline) this.lost(d, "lease-lost");
    // An unrecoverable throw ends the job dead ("F": the finish script buries it whatever attempts are left), unless
    // the delivery lost its lease: one that may no longer be the job's current delivery does not decide its fate, and
    // its throw is an ordinary failed attempt, as any throw after the signal aborted.
    let outcome: FinishKind = kind === "u" ? (d.lostReason === "lease-lost" ? "f" : "F") : kind;
    let text = payload;
    if (d.lostReason === "lease-lost" && kind !== "f" && kind !== "u") {
      // The handler ended after its signal aborted for a lost lease: what it returned is refused (Job.signal), also
      // when no other delivery reclaimed the job yet and Redis would still take the outcome. The attempt ends as one
      // whose lease expired does: failed, retried after its backoff.
      outcome = "f";
      text = errorText(new JobLostError(d.id, d.fence, "lease-lost"));
    }
    d.phase = "finishing";
    const held = () => d.lostReason === undefined && performance.now() < d.deadline;
    this.#finisher.finish(d.partition, d.id, d.fence, outcome, text, held).then(
      (status) => {
        this.#release(d);
        this.#count(status);
        this.#report(d, status, handlerMs, outcome === "c" ? undefined : text);
        if (status === "dead")
          workerEvent(this.#w, "job-dead", {
            attributes: { attempt: d.attempt, jobId: d.id },
            error: new Error(text),
          });
      },
      (err: unknown) => {
        this.#release(d);
        this.#report(d, "error", handlerMs, undefined, toCoordisError(err));
      },
    );
  }

  /** `d` is no longer held (unless a later delivery of the same job took its place). */
  #release(d: Delivery<T>): void {
    if (this.#held.get(d.key) === d) this.#held.delete(d.key);
  }

  #count(status: FinishStatus): void {
    if (status === "completed") this.#stats.completed++;
    else if (status === "retry") this.#stats.retried++;
    else if (status === "dead") this.#stats.dead++;
    else this.#stats.refused++;
  }

  async #progress(d: Delivery<T>, value: unknown): Promise<boolean> {
    if (value === undefined) throw new InvalidArgumentError("value", "expected a JSON value");
    let text: string;
    try {
      text = faithfulJsonText(value);
    } catch (err) {
      // A BigInt, a Map, NaN, a cycle, a toJSON that throws: bad input, checked as job data is.
      throw new InvalidArgumentError("value", `cannot be encoded as JSON: ${validate.thrownMessage(err)}`);
    }
    if (overBytes(text, MAX_PROGRESS_BYTES)) {
      throw new InvalidArgumentError(
        "value",
        `must be at most ${MAX_PROGRESS_BYTES} bytes (64 KiB) once encoded as JSON in UTF-8`,
      );
    }
    // A delivery whose signal aborted (lease lost, cancelled, handed back) is no longer the job's current one for its
    // handler, even while Redis still holds its fence: refused, as what the handler returns then is.
    if (d.lostReason !== undefined) return false;
    const k = this.#w.keys[d.partition] as PartitionKeys;
    return (await runScript(this.#w.redis, queueScripts.progress, [k.jobs, k.active], [d.id, d.fence, text])) === 1;
  }

  #report(d: Delivery<T>, outcome: string, durationMs: number, failure?: string, error?: Error): void {
    if (this.#opts.observer?.onOperation === undefined) return;
    notifyOperation(this.#opts.observer, {
      primitive: "queue",
      op: "process",
      outcome,
      durationMs,
      name: this.#w.name,
      attributes: { attempt: d.attempt, jobId: d.id },
      ...(error !== undefined ? { error } : failure !== undefined ? { error: new Error(failure) } : {}),
    });
  }
}

/**
 * How a handler's throw ends its attempt: "u" unrecoverable (the job is dead without a retry, unless the delivery lost
 * its lease: then the throw counts as an ordinary failed attempt), "f" failed (retried while attempts are left).
 */
function failure(err: unknown): "u" | "f" {
  return isUnrecoverable(err) ? "u" : "f";
}
