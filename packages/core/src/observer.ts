import { isThenable } from "./thenable.js";

/**
 * The observer is how every Coordis primitive reports what it does. `@coordis/metrics` turns these calls into
 * prom-client metrics; tests and users can plug in their own. Observers must be fast and must not throw: Coordis
 * calls them synchronously on the hot path and swallows anything they throw (see {@link notifyOperation}).
 */

/** One completed public operation (an acquire, a consume, a submit...). */
export interface OperationEvent {
  /** The primitive: `"lock"`, `"ratelimit"`, `"leaderboard"`, `"script"`... */
  readonly primitive: string;
  /** The operation: `"acquire"`, `"consume"`, `"submit"`... */
  readonly op: string;
  /** Result class, a small fixed set per operation: `"ok"`, `"acquired"`, `"busy"`, `"rejected"`, `"error"`... */
  readonly outcome: string;
  /** Wall time of the operation in milliseconds (may include waiting, e.g. for a busy lock). */
  readonly durationMs: number;
  /** The entity's name (lock name, rate-limit key). Unbounded: never use it as a metric label. */
  readonly name?: string;
  /** Small, bounded extra facts (rule name, algorithm, period). */
  readonly attributes?: Readonly<Record<string, string | number | boolean>>;
  /** The error, when `outcome` is an error outcome. */
  readonly error?: Error;
}

/** A notable thing that is not an operation: a lease lost, a reconnect, a gap detected, a warning. */
export interface CoordisEvent {
  /** The primitive or component that reports: `"lock"`, `"connection"`, `"cache"`... */
  readonly primitive: string;
  /** What happened: `"lease-lost"`, `"connection-error"`, `"resubscribed"`... */
  readonly type: string;
  /** The entity's name, when there is one (unbounded; never a metric label). */
  readonly name?: string;
  /** Small, bounded extra facts. */
  readonly attributes?: Readonly<Record<string, string | number | boolean>>;
  /** The error behind the event, if any. */
  readonly error?: Error;
}

/** Receives operation and event reports. Both methods are optional. */
export interface CoordisObserver {
  /** Called once per completed public operation. */
  onOperation?(event: OperationEvent): void;
  /** Called for notable events outside operations. */
  onEvent?(event: CoordisEvent): void;
}

/** The default observer: ignores everything. */
export const noopObserver: CoordisObserver = Object.freeze({});

/**
 * What an observer returned: an async one (a logger or an exporter that awaits its sink) answers a promise, and its
 * rejection, which nobody awaits, would be an unhandled rejection, which ends a Node process. It is swallowed too.
 */
function swallowRejection(result: unknown): void {
  if (isThenable(result)) result.then(undefined, () => {});
}

/** Delivers `event` to `observer.onOperation`, ignoring anything the observer throws. */
export function notifyOperation(observer: CoordisObserver | undefined, event: OperationEvent): void {
  if (observer?.onOperation === undefined) return;
  try {
    swallowRejection(observer.onOperation(event));
  } catch {
    // An observer must never break the operation it observes.
  }
}

/** Delivers `event` to `observer.onEvent`, ignoring anything the observer throws. */
export function notifyEvent(observer: CoordisObserver | undefined, event: CoordisEvent): void {
  if (observer?.onEvent === undefined) return;
  try {
    swallowRejection(observer.onEvent(event));
  } catch {
    // An observer must never break the code that reports to it.
  }
}

/**
 * Combines several observers into one that calls each in turn.
 * @example combineObservers(metricsObserver, { onEvent: (e) => log.warn(e) })
 */
export function combineObservers(...observers: CoordisObserver[]): CoordisObserver {
  return {
    onOperation: (e) => {
      for (const o of observers) notifyOperation(o, e);
    },
    onEvent: (e) => {
      for (const o of observers) notifyEvent(o, e);
    },
  };
}
