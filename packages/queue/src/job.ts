import { JobLostError, type JobLostReason } from "./errors.js";

/** What a handler gets: one delivery of one job. */
export interface Job<T = unknown> {
  /** The job's id. */
  readonly id: string;
  /** The job's data, decoded. */
  readonly data: T;
  /** This attempt's number, from 1. */
  readonly attempt: number;
  /** Attempts allowed. */
  readonly maxAttempts: number;
  /**
   * Fencing token of this delivery: strictly greater than the fence of every earlier delivery of this job (a counter of
   * the job's partition, kept as long as Redis keeps its data). Pass it with the job's side effects and have the
   * system you write to refuse a fence lower than one it already accepted: a worker that lost its lease (paused,
   * partitioned) then cannot overwrite the work of the delivery that replaced it.
   */
  readonly fence: number;
  /**
   * Aborts (reason: a {@link JobLostError}) when this delivery ends before the handler does: the lease was lost, the
   * job was cancelled, or the worker closed and handed it back. Whatever the handler returns after that is refused:
   * never recorded as the job's result (after a lost lease that no other delivery reclaimed yet, the attempt is
   * recorded as failed instead, and retried after its backoff).
   */
  readonly signal: AbortSignal;
  /**
   * Stores a progress value (JSON), readable with `Queue.get()`. One round trip; refused (resolves false) once the
   * delivery is no longer the job's current one, or once `signal` aborted (then nothing is sent).
   * @throws InvalidArgumentError naming `value` (nothing sent) for `undefined`, a value JSON cannot encode or would
   *   change (checked as job data is: a BigInt, a Map, NaN...), or a JSON text over `MAX_PROGRESS_BYTES` (65,536) bytes
   *   in UTF-8
   *
   * A function of its own, bound to this delivery: a handler may take it apart (`async ({ data, progress }) => ...`).
   */
  readonly progress: (value: unknown) => Promise<boolean>;
}

/** A delivery held by a worker, from fetch until its outcome is recorded. Internal. */
export class Delivery<T> implements Job<T> {
  readonly id: string;
  readonly fence: number;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly partition: number;
  data!: T;
  /** Local lease deadline (`performance.now()` base). */
  deadline: number;
  /** 'running' while the handler runs, 'finishing' until the finish script answered. */
  phase: "running" | "finishing" = "running";
  /** Set once the delivery ended early (lost, cancelled, handed back). */
  lostReason: JobLostReason | undefined;
  /** `performance.now()` when the handler started. */
  started = 0;
  /** Created when a handler first reads `signal` (most never do: one fewer allocation per job). */
  #controller: AbortController | undefined;
  readonly #progress: (job: Delivery<T>, value: unknown) => Promise<boolean>;
  #boundProgress: ((value: unknown) => Promise<boolean>) | undefined;

  constructor(
    init: { id: string; fence: number; attempt: number; maxAttempts: number; partition: number; deadline: number },
    progress: (job: Delivery<T>, value: unknown) => Promise<boolean>,
  ) {
    this.id = init.id;
    this.fence = init.fence;
    this.attempt = init.attempt;
    this.maxAttempts = init.maxAttempts;
    this.partition = init.partition;
    this.deadline = init.deadline;
    this.key = `${init.partition}\n${init.id}`;
    this.#progress = progress;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.lostReason !== undefined) this.#controller.abort(this.#lostError(this.lostReason));
    }
    return this.#controller.signal;
  }

  /** The key of this delivery in the worker's maps. */
  readonly key: string;

  /** Bound to this delivery, made when a handler first reads it (most never do). */
  get progress(): (value: unknown) => Promise<boolean> {
    this.#boundProgress ??= (value: unknown) => this.#progress(this, value);
    return this.#boundProgress;
  }

  /** Ends the delivery early: aborts the signal with a JobLostError. Idempotent; returns whether it did now. */
  lose(reason: JobLostReason): boolean {
    if (this.lostReason !== undefined) return false;
    this.lostReason = reason;
    this.#controller?.abort(this.#lostError(reason));
    return true;
  }

  #lostError(reason: JobLostReason): JobLostError {
    return new JobLostError(this.id, this.fence, reason);
  }
}
