/**
 * @coordis/lock — distributed locks on Redis: a fenced {@link Mutex}, {@link Redlock} over N independent masters,
 * a {@link Semaphore} with server-time expiry, and {@link runOncePerTick} for cron-style jobs on many replicas.
 * @packageDocumentation
 */
export { LeaseLostError, type LeaseLostReason, LockBusyError } from "./errors.js";
export type { Lease } from "./lease.js";
export { LockBase } from "./lock-base.js";
export { Mutex, type MutexOptions } from "./mutex.js";
export {
  type AcquireOptions,
  type CommonLockOptions,
  DEFAULT_DRIFT_FACTOR,
  DEFAULT_TTL_MS,
  DEFAULT_WAIT_MS,
  MAX_LOCK_MS,
  MIN_LOCK_MS,
  type UsingOptions,
} from "./options.js";
export { MAX_REDLOCK_NODES, Redlock, type RedlockOptions } from "./redlock.js";
export {
  DEFAULT_HISTORY_LIMIT,
  DEFAULT_RECORD_TTL_MS,
  MAX_HISTORY_LIMIT,
  type RunOncePerTickOptions,
  runOncePerTick,
  type TickContext,
  type TickHistoryOptions,
  type TickRecord,
  type TickResult,
  tickHistory,
} from "./run-once-per-tick.js";
export { lockScripts } from "./scripts.generated.js";
export { MAX_PERMITS, Semaphore, type SemaphoreOptions } from "./semaphore.js";
