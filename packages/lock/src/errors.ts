import { CoordisError } from "@coordis/core";

/**
 * The lock (or every permit of a semaphore) stayed held by someone else until `waitMs` ran out, or a single attempt
 * found it held (`waitMs: 0`). Nothing was acquired. Code `ERR_LOCK_BUSY`.
 */
export class LockBusyError extends CoordisError {
  /** The lock's name. */
  readonly lockName: string;
  /** How long the caller waited, ms. */
  readonly waitedMs: number;

  constructor(lockName: string, waitedMs: number, message?: string) {
    super(
      "ERR_LOCK_BUSY",
      message ?? `Lock "${lockName}" is held by someone else (gave up after ${Math.round(waitedMs)} ms)`,
    );
    this.lockName = lockName;
    this.waitedMs = waitedMs;
  }
}

/** Why a lease was lost: its local validity ran out, or Redis no longer held its token. */
export type LeaseLostReason = "expired" | "not-held";

/**
 * A lease was lost after it was acquired: its validity ran out before it was extended, or an extension found the
 * token gone (expired in Redis and possibly taken by another holder). The lease's `signal` aborts with this error.
 * Code `ERR_LEASE_LOST`.
 */
export class LeaseLostError extends CoordisError {
  /** The lock's name. */
  readonly lockName: string;
  /** The lost lease's fence. */
  readonly fence: number;
  /** Why it was lost. */
  readonly reason: LeaseLostReason;

  constructor(lockName: string, fence: number, reason: LeaseLostReason, options?: { cause?: unknown }) {
    super(
      "ERR_LEASE_LOST",
      reason === "expired"
        ? `Lease on "${lockName}" (fence ${fence}) expired before it was extended`
        : `Lease on "${lockName}" (fence ${fence}) is no longer held in Redis`,
      options,
    );
    this.lockName = lockName;
    this.fence = fence;
    this.reason = reason;
  }
}
