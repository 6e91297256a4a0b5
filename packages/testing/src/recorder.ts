import type { CoordisEvent, CoordisObserver, OperationEvent } from "@coordis/core";
import { WaitTimeoutError } from "./wait.js";

/** Options of {@link EventRecorder.waitFor}. */
export interface WaitForOptions {
  /** Names the awaited item in the timeout message; default `"a matching event"`. */
  what?: string;
  /** Give up after this many ms; default 5,000. */
  timeoutMs?: number;
  /** Only consider items recorded at this index or later: pass the current length to wait for the next one. */
  from?: number;
}

/**
 * Records what something emits, in order, and lets a test wait for an item without polling: {@link waitFor}
 * resolves the moment a matching item is recorded (or at once when one already was).
 *
 * @example
 * const overflows = new EventRecorder<OverflowInfo>();
 * bus.on("overflow", overflows.record);
 * const first = await overflows.waitFor((o) => o.channel === "slow", { what: "an overflow on slow" });
 * expect(overflows.items).toHaveLength(14);
 */
export class EventRecorder<T> {
  /** Everything recorded so far, oldest first. */
  readonly items: T[] = [];
  #waiters = new Set<(item: T) => void>();

  /** Records one item; a bound function, so it can be passed as a listener (`emitter.on("x", rec.record)`). */
  readonly record = (item: T): void => {
    this.items.push(item);
    for (const waiter of [...this.#waiters]) waiter(item);
  };

  /**
   * The first recorded item that matches `predicate` — already recorded (at index `from` or later) or still to come.
   * A predicate that throws rejects this wait with its error (recording goes on).
   * @throws WaitTimeoutError when none was recorded within `timeoutMs`
   */
  waitFor(predicate: (item: T) => boolean, options: WaitForOptions = {}): Promise<T> {
    const from = options.from ?? 0;
    let index: number;
    try {
      index = this.items.findIndex((item, i) => i >= from && predicate(item));
    } catch (err) {
      return Promise.reject(err);
    }
    if (index !== -1) return Promise.resolve(this.items[index] as T);
    const timeoutMs = options.timeoutMs ?? 5_000;
    return new Promise<T>((resolve, reject) => {
      // A predicate that throws fails its own wait: never `record`, which runs inside the emitter (or the
      // observer call) of the code under test, nor the other waits for the same item.
      const waiter = (item: T) => {
        let matched: boolean;
        try {
          matched = predicate(item);
        } catch (err) {
          this.#waiters.delete(waiter);
          clearTimeout(timer);
          reject(err);
          return;
        }
        if (!matched) return;
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        resolve(item);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new WaitTimeoutError(options.what ?? "a matching event", timeoutMs));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /** Forgets what was recorded (pending {@link waitFor} calls keep waiting for new items). */
  clear(): void {
    this.items.length = 0;
  }
}

/** An observer that records every report; pass it as a primitive's `observer`. */
export interface ObserverRecorder extends CoordisObserver {
  /** Every `onOperation` report, oldest first. */
  readonly ops: OperationEvent[];
  /** Every `onEvent` report, oldest first. */
  readonly events: CoordisEvent[];
  onOperation(event: OperationEvent): void;
  onEvent(event: CoordisEvent): void;
  /** The first operation report matching `predicate`, recorded already or still to come. */
  waitForOperation(predicate: (op: OperationEvent) => boolean, options?: WaitForOptions): Promise<OperationEvent>;
  /** The first event report matching `predicate`, recorded already or still to come. */
  waitForEvent(predicate: (event: CoordisEvent) => boolean, options?: WaitForOptions): Promise<CoordisEvent>;
  /** Forgets every recorded report. */
  clear(): void;
}

/**
 * An observer that records every operation and event report.
 *
 * @example
 * const rec = recordObserver();
 * const cache = new Cache(redis, { observer: rec });
 * await rec.waitForEvent((e) => e.type === "gap", { what: "the gap" });
 * expect(rec.ops.map((o) => o.outcome)).toEqual(["hit"]);
 */
export function recordObserver(): ObserverRecorder {
  const ops = new EventRecorder<OperationEvent>();
  const events = new EventRecorder<CoordisEvent>();
  return {
    ops: ops.items,
    events: events.items,
    onOperation: ops.record,
    onEvent: events.record,
    waitForOperation: (predicate, options) => ops.waitFor(predicate, { what: "an operation report", ...options }),
    waitForEvent: (predicate, options) => events.waitFor(predicate, { what: "an event report", ...options }),
    clear() {
      ops.clear();
      events.clear();
    },
  };
}
