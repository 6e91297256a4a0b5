import { notifyEvent, type RedisClient } from "@coordis/core";
import type { PartitionKeys } from "./keys.js";
import type { ParsedWorker } from "./worker-options.js";

/** Counters of a worker since it started. */
export interface WorkerStats {
  completed: number;
  retried: number;
  dead: number;
  refused: number;
  handedBack: number;
}

/** What the parts of one Worker share (fetch loops, delivery runner), built once by its constructor. Internal. */
export interface WorkerContext<T, R> {
  readonly redis: RedisClient;
  /** The queue's name. */
  readonly name: string;
  readonly opts: ParsedWorker<T, R>;
  /** One set of keys per partition. */
  readonly keys: readonly PartitionKeys[];
  readonly stats: WorkerStats;
  /** Aborts when the worker starts closing. */
  readonly closing: AbortSignal;
}

/** Reports an event of the worker (not an operation) to its observer. */
export function workerEvent<T, R>(
  w: WorkerContext<T, R>,
  type: string,
  extra: { error?: Error; attributes?: Record<string, string | number> },
): void {
  notifyEvent(w.opts.observer, {
    primitive: "queue",
    type,
    name: w.name,
    ...(extra.attributes === undefined ? {} : { attributes: extra.attributes }),
    ...(extra.error === undefined ? {} : { error: extra.error }),
  });
}
