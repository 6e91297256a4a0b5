import { performance } from "node:perf_hooks";
import { toCoordisError } from "./errors.js";
import { type CoordisObserver, notifyOperation } from "./observer.js";

/** Small, bounded facts attached to a report (see {@link OperationEvent.attributes}). */
export type ReportAttributes = Readonly<Record<string, string | number | boolean>>;

/**
 * What an operation report says besides its outcome and duration: the primitive, the operation and, when there are,
 * the entity's name and bounded attributes. A primitive usually builds the constant part once (per instance) and
 * adds `name` per call.
 */
export interface OperationSite {
  /** `"cache"`, `"pubsub"`, `"lock"`... */
  readonly primitive: string;
  /** `"get"`, `"publish"`, `"acquire"`... */
  readonly op: string;
  /** The entity's name (a key, a channel, a lock name); never a metric label. */
  readonly name?: string | undefined;
  /** Small, bounded extra facts. */
  readonly attributes?: ReportAttributes | undefined;
}

/**
 * Reports one finished operation that started at `started` (a `performance.now()` reading) to `observer`. Costs
 * nothing when the observer has no `onOperation`; an observer that throws is ignored (see {@link notifyOperation}).
 * `error` is attached when it is an `Error`.
 *
 * Use it where the outcome is decided inside the operation (a lock's `busy` after several attempts, a cache read's
 * tier); use {@link instrument} when one function call is the operation.
 */
export function reportOperation(
  observer: CoordisObserver | undefined,
  site: OperationSite,
  started: number,
  outcome: string,
  error?: unknown,
): void {
  if (observer?.onOperation === undefined) return;
  notifyOperation(observer, {
    primitive: site.primitive,
    op: site.op,
    outcome,
    durationMs: performance.now() - started,
    ...(site.name === undefined ? {} : { name: site.name }),
    ...(site.attributes === undefined ? {} : { attributes: site.attributes }),
    ...(error instanceof Error ? { error } : {}),
  });
}

/** How {@link instrument} classifies a result and treats an error. */
export interface InstrumentOptions<T> {
  /** The outcome of a result; default `"ok"` for every result. */
  readonly outcome?: (result: T) => string;
  /**
   * `"convert"` (default): a rejection is turned into a `CoordisError` with `toCoordisError` (naming `script` when
   * given), reported, and thrown in that form. `"keep"`: reported and rethrown as it is (an error of the user's own
   * callback, e.g. a cache loader).
   */
  readonly errors?: "convert" | "keep";
  /** Script name passed to `toCoordisError` with `errors: "convert"`. */
  readonly script?: string;
}

/**
 * Runs one public operation and reports it to `observer`: its wall time, its outcome (`"ok"`, or what
 * `options.outcome` says of the result; `"error"` when it throws) and the error. The error thrown is a
 * `CoordisError` (converted with `toCoordisError`) unless `options.errors` is `"keep"`.
 *
 * @example
 * publish(channel, data) {
 *   return instrument(this.#observer, { primitive: "pubsub", op: "publish", name: channel }, () =>
 *     this.#redis.publish(key, data),
 *   );
 * }
 */
export async function instrument<T>(
  observer: CoordisObserver | undefined,
  site: OperationSite,
  fn: () => Promise<T> | T,
  options?: InstrumentOptions<T>,
): Promise<T> {
  const started = performance.now();
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    const error = options?.errors === "keep" ? err : toCoordisError(err, options?.script);
    reportOperation(observer, site, started, "error", error);
    throw error;
  }
  reportOperation(observer, site, started, options?.outcome === undefined ? "ok" : options.outcome(result));
  return result;
}
