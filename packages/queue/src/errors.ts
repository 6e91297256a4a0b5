import { CoordisError } from "@coordis/core";

/**
 * `Queue.result()`: the job used all its attempts and is a dead letter. `lastError` is its last failure's text.
 * Code `ERR_JOB_DEAD`.
 */
export class JobDeadError extends CoordisError {
  /** The job's id. */
  readonly jobId: string;
  /** Attempts made. */
  readonly attempts: number;
  /** The last attempt's error, as `"<name>: <message>"`. */
  readonly lastError: string;

  constructor(jobId: string, attempts: number, lastError: string) {
    super("ERR_JOB_DEAD", `Job "${jobId}" failed ${attempts} time(s) and is dead: ${lastError}`);
    this.jobId = jobId;
    this.attempts = attempts;
    this.lastError = lastError;
  }
}

/**
 * The brand every {@link UnrecoverableError} carries (`Symbol.for("@coordis/queue.unrecoverable")`, in the global
 * symbol registry): an error of another installed copy of this package, or of a subclass whatever its name, is
 * recognised by it.
 */
const UNRECOVERABLE = Symbol.for("@coordis/queue.unrecoverable");

/**
 * Thrown (or rejected with) by a handler: the job cannot succeed, so this attempt fails and the job goes straight to
 * the dead letters, whatever attempts it has left (`result()` rejects with {@link JobDeadError}; `retryDead(id)` gives
 * it a fresh set of attempts, as for any dead job). Its `name: message` is recorded as the job's last error, as any
 * failure's. A worker also treats as unrecoverable a thrown object whose `name` is `"UnrecoverableError"` (another
 * library's, such as BullMQ's) or that carries the brand `Symbol.for("@coordis/queue.unrecoverable")` (an instance of
 * this class from another installed copy of the package, or of a subclass). Code `ERR_UNRECOVERABLE`.
 */
export class UnrecoverableError extends CoordisError {
  static {
    // On the prototype, not enumerable: instances serialize and print as other errors do.
    Object.defineProperty(UnrecoverableError.prototype, UNRECOVERABLE, { value: true });
  }

  constructor(message = "the job cannot succeed: not retried", options?: { cause?: unknown }) {
    super("ERR_UNRECOVERABLE", message, options);
  }
}
/**
 * Whether a handler threw to end its job dead without a retry: an {@link UnrecoverableError} (of any copy of the
 * package, or a subclass), or an object named `"UnrecoverableError"`. Never throws: a value whose properties cannot
 * be read is an ordinary failure.
 */
export function isUnrecoverable(err: unknown): boolean {
  if (err instanceof UnrecoverableError) return true;
  if ((typeof err !== "object" && typeof err !== "function") || err === null) return false;
  try {
    return (
      (err as { [UNRECOVERABLE]?: unknown })[UNRECOVERABLE] === true || (err as Error).name === "UnrecoverableError"
    );
  } catch {
    return false;
  }
}

/** `Queue.result()`: the job was cancelled. Code `ERR_JOB_CANCELLED`. */
export class JobCancelledError extends CoordisError {
  /** The job's id. */
  readonly jobId: string;

  constructor(jobId: string) {
    super("ERR_JOB_CANCELLED", `Job "${jobId}" was cancelled`);
    this.jobId = jobId;
  }
}

/** `Queue.result()`: no such job (never added, or already removed by retention). Code `ERR_JOB_NOT_FOUND`. */
export class JobNotFoundError extends CoordisError {
  /** The job's id. */
  readonly jobId: string;

  constructor(jobId: string) {
    super("ERR_JOB_NOT_FOUND", `Job "${jobId}" does not exist (never added, or removed by retention)`);
    this.jobId = jobId;
  }
}

/** `Queue.result()`: the job did not finish within `timeoutMs`. Code `ERR_RESULT_TIMEOUT`. */
export class ResultTimeoutError extends CoordisError {
  /** The job's id. */
  readonly jobId: string;

  constructor(jobId: string, timeoutMs: number) {
    super("ERR_RESULT_TIMEOUT", `Job "${jobId}" did not finish within ${timeoutMs} ms`);
    this.jobId = jobId;
  }
}

/** Why a running job's delivery ended before its handler did. */
export type JobLostReason = "lease-lost" | "cancelled" | "closing";

/**
 * A running job's `signal` aborted: its lease was lost (the job may already run elsewhere, with a higher fence), it was
 * cancelled, or the worker closed and handed it back. Whatever the handler finishes is refused. Code `ERR_JOB_LOST`.
 */
export class JobLostError extends CoordisError {
  /** The job's id. */
  readonly jobId: string;
  /** The delivery's fence. */
  readonly fence: number;
  /** Why. */
  readonly reason: JobLostReason;

  constructor(jobId: string, fence: number, reason: JobLostReason) {
    const why =
      reason === "cancelled"
        ? "it was cancelled"
        : reason === "closing"
          ? "the worker closed and handed it back"
          : "its lease was lost (it may run elsewhere with a higher fence)";
    super("ERR_JOB_LOST", `Job "${jobId}" (fence ${fence}) stopped: ${why}`);
    this.jobId = jobId;
    this.fence = fence;
    this.reason = reason;
  }
}

/**
 * A Queue or Worker is configured with another `partitions` than the queue recorded in Redis on its first use. Every
 * Queue and Worker of one queue must use the same count: with another one, jobs would be added to partitions no worker
 * reads. Code `ERR_QUEUE_PARTITIONS`.
 */
export class PartitionsMismatchError extends CoordisError {
  /** The queue's name. */
  readonly queue: string;
  /** The count recorded in Redis (`<prefix>:queue:{<name>}:meta`, field `partitions`). */
  readonly stored: number;
  /** The count this Queue or Worker was given. */
  readonly given: number;

  constructor(queue: string, stored: number, given: number, metaKey: string) {
    super(
      "ERR_QUEUE_PARTITIONS",
      `Queue "${queue}" has partitions: ${stored} (recorded in Redis on its first use), but this client was given ` +
        `partitions: ${given}. Every Queue and Worker of a queue must use the same count: pass partitions: ${stored}. ` +
        `To change the count, drain the queue (no waiting, delayed or running jobs), then delete the field ` +
        `"partitions" of the hash "${metaKey}".`,
    );
    this.queue = queue;
    this.stored = stored;
    this.given = given;
  }
}
