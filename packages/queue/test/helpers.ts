import type { RedisClient } from "@coordis/core";
import { type Job, Queue, Worker } from "@coordis/queue";

/** A promise with its resolve function, for handlers that wait for the test. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * Queues and workers a test file makes on one client (a getter: the client is made in beforeAll), with `prefix` and
 * no schedules; `closeAll()` (from afterEach) closes every one made (and runs every `onClose`) since the last call.
 */
export function tracked(redis: () => RedisClient, prefix: string) {
  const closers: Array<() => Promise<unknown>> = [];
  return {
    worker<T, R>(name: string, handler: (job: Job<T>) => Promise<R>, opts = {}): Worker<T, R> {
      const w = new Worker<T, R>(redis(), name, handler, { prefix, schedules: false, ...opts });
      closers.push(() => w.close({ timeoutMs: 1_000 }));
      return w;
    },
    queue<T, R = unknown>(name: string, opts = {}): Queue<T, R> {
      const q = new Queue<T, R>(redis(), name, { prefix, ...opts });
      closers.push(() => q.close());
      return q;
    },
    /** Runs `close` at the next closeAll(), after what is already tracked. */
    onClose: (close: () => Promise<unknown>) => void closers.push(close),
    closeAll: () => Promise.all(closers.splice(0).map((c) => c())),
  };
}
