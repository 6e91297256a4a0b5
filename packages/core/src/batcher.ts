import { errorOf, InvalidArgumentError } from "./errors.js";
import * as validate from "./validate.js";

/**
 * Micro-batching options of a primitive's hot operation (`RateLimiter.consume`, `Leaderboard.submit`,
 * `EventLog.append`): calls made close together are sent as one script invocation per hash slot, each caller still
 * getting its own result and error.
 */
export interface BatchOptions {
  /** Most calls in one script invocation (per hash slot), 1–1000; default {@link DEFAULT_BATCH_MAX_SIZE}. */
  maxSize?: number;
  /**
   * How long (ms, 0–1000) the first queued call waits for company before its batch is sent. Default 0: the batch
   * is sent at the end of the current event-loop turn (`setImmediate`), so it collects every call made
   * synchronously and from promise continuations of that turn, and adds no timer delay.
   */
  maxDelayMs?: number;
}

/** {@link BatchOptions} with defaults filled in. */
export interface BatchSettings {
  readonly maxSize: number;
  readonly maxDelayMs: number;
}

/**
 * Default `maxSize` of {@link BatchOptions}. A group that reaches it is sent at once, so with many calls in flight
 * several batches are in flight together and Node and Redis work in parallel; one batch of everything makes them
 * take turns, small batches pay the per-script overhead too often (measured, 50 callers: 32 best for consume, submit
 * and append; about two thirds of the calls in flight).
 */
export const DEFAULT_BATCH_MAX_SIZE = 32;
/** Largest `maxSize` of {@link BatchOptions}. */
export const MAX_BATCH_SIZE = 1000;
/** Largest `maxDelayMs` of {@link BatchOptions}. */
export const MAX_BATCH_DELAY_MS = 1000;

/**
 * Validates a primitive's `batch` option: `undefined` or `false` = off (returns `undefined`), `true` = defaults,
 * or a {@link BatchOptions} object.
 * @throws InvalidArgumentError naming `argument` (e.g. `"options.batch.maxSize"`)
 */
export function batchSettings(argument: string, value: unknown): BatchSettings | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return Object.freeze({ maxSize: DEFAULT_BATCH_MAX_SIZE, maxDelayMs: 0 });
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidArgumentError(argument, "expected true, false or { maxSize?, maxDelayMs? }");
  }
  const opts = value as BatchOptions;
  const maxSize =
    opts.maxSize === undefined
      ? DEFAULT_BATCH_MAX_SIZE
      : validate.positiveInteger(`${argument}.maxSize`, opts.maxSize, MAX_BATCH_SIZE);
  const maxDelayMs =
    opts.maxDelayMs === undefined
      ? 0
      : validate.durationMs(`${argument}.maxDelayMs`, opts.maxDelayMs, { min: 0, max: MAX_BATCH_DELAY_MS });
  return Object.freeze({ maxSize, maxDelayMs });
}

/** One caller's outcome in a batch: its own value or its own error. */
export type BatchOutcome<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: Error };

/**
 * Sends one group of queued items (all of one hash slot, in call order) as one script invocation and returns one
 * outcome per item, in the same order. A rejection fails every item of the group with that error.
 */
export type BatchRunner<I, R> = (
  items: readonly I[],
  group: string | number,
) => Promise<ReadonlyArray<BatchOutcome<R>>>;

interface Pending<I, R> {
  readonly item: I;
  readonly resolve: (value: R) => void;
  readonly reject: (error: Error) => void;
}

/**
 * Coalesces calls into batches: {@link Batcher.add} queues an item under a group (a hash slot, or one group on a
 * standalone server) and the batcher hands each group's items to the runner in call order, once per window
 * (`maxDelayMs`, or the end of the event-loop turn) or as soon as a group holds `maxSize` items. The runner is called
 * synchronously from {@link Batcher.flush}, so its command is written before anything the caller sends next: calls
 * of one group reach Redis in call order, across batches too.
 */
export class Batcher<I, R> {
  /** The validated settings. */
  readonly settings: BatchSettings;
  readonly #run: BatchRunner<I, R>;
  readonly #groups = new Map<string | number, Pending<I, R>[]>();
  #timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  #queued = 0;

  /** @param run sends one group (see {@link BatchRunner}) */
  constructor(settings: BatchSettings, run: BatchRunner<I, R>) {
    this.settings = settings;
    this.#run = run;
  }

  /** Number of items queued and not yet sent. */
  get queued(): number {
    return this.#queued;
  }

  /**
   * Queues `item` under `group`.
   * @returns the item's own value, or rejects with its own error (or the error that failed its whole batch)
   */
  add(group: string | number, item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      let list = this.#groups.get(group);
      if (list === undefined) {
        list = [];
        this.#groups.set(group, list);
      }
      list.push({ item, resolve, reject });
      this.#queued++;
      if (list.length >= this.settings.maxSize) {
        this.#groups.delete(group);
        this.#queued -= list.length;
        this.#dispatch(group, list);
        if (this.#queued === 0) this.#cancelTimer();
      } else if (this.#timer === undefined) {
        this.#timer =
          this.settings.maxDelayMs === 0
            ? setImmediate(() => this.#onTimer())
            : setTimeout(() => this.#onTimer(), this.settings.maxDelayMs);
      }
    });
  }

  /**
   * Sends everything queued now, one runner call per group. Primitives call it before an unbatched operation so
   * that it cannot overtake queued calls.
   */
  flush(): void {
    this.#cancelTimer();
    const groups = [...this.#groups];
    this.#groups.clear();
    this.#queued = 0;
    for (const [group, list] of groups) this.#dispatch(group, list);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.flush();
  }

  #cancelTimer(): void {
    const timer = this.#timer;
    if (timer === undefined) return;
    this.#timer = undefined;
    if (this.settings.maxDelayMs === 0) clearImmediate(timer as NodeJS.Immediate);
    else clearTimeout(timer as NodeJS.Timeout);
  }

  #dispatch(group: string | number, list: Pending<I, R>[]): void {
    const failAll = (err: unknown) => {
      const error = errorOf(err); // never throws, also for a value without a string form
      for (const p of list) p.reject(error);
    };
    let sent: Promise<ReadonlyArray<BatchOutcome<R>>>;
    try {
      // A runner that returns its outcomes without a promise (a synchronous one) is read as one that resolved: a
      // `.then` of a non-promise would throw past the callers, leaving them pending for ever.
      sent = Promise.resolve(
        this.#run(
          list.map((p) => p.item),
          group,
        ),
      );
    } catch (err) {
      failAll(err);
      return;
    }
    // The promise `then` returns is awaited by nobody, so this handler must not throw (that would be an unhandled
    // rejection, which ends a Node process): a malformed reply fails the callers instead.
    sent.then((outcomes) => {
      try {
        if (!Array.isArray(outcomes) || outcomes.length !== list.length) {
          const got = Array.isArray(outcomes) ? `${outcomes.length} outcomes` : String(outcomes);
          failAll(new Error(`batch runner returned ${got} for ${list.length} items`));
          return;
        }
        outcomes.forEach((o, i) => {
          const p = list[i] as Pending<I, R>;
          if (o.ok) p.resolve(o.value);
          else p.reject(o.error);
        });
      } catch (err) {
        failAll(err); // settles the callers not settled yet
      }
    }, failAll);
  }
}
