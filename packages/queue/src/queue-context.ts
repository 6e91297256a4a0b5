import { type Durability, type RedisClient, reportOperation } from "@coordis/core";
import { type PartitionKeys, partitionOf } from "./keys.js";
import type { ParsedCommon, ParsedJob } from "./options.js";
import type { PartitionsGate } from "./partitions-check.js";

/** What the parts of one Queue share (adds, job reads, schedules), built once by its constructor. Internal. */
export interface QueueContext<T, R> {
  readonly redis: RedisClient;
  /** The queue's name. */
  readonly name: string;
  readonly opts: ParsedCommon<T, R>;
  /** The queue's parsed `defaults` job options. */
  readonly defaults: ParsedJob;
  /** One set of keys per partition. */
  readonly keys: readonly PartitionKeys[];
  readonly durability: Durability | undefined;
  /** The partition-count check every operation passes first. */
  readonly gate: PartitionsGate;
}

/** The keys of the partition holding job `id`. */
export function jobKeys<T, R>(q: QueueContext<T, R>, id: string): PartitionKeys {
  return q.keys[partitionOf(id, q.opts.partitions)] as PartitionKeys;
}

/** Reports one operation of the queue to its observer. */
export function reportQueueOp<T, R>(
  q: QueueContext<T, R>,
  op: string,
  outcome: string,
  start: number,
  attributes?: Record<string, number>,
  error?: Error,
): void {
  if (q.opts.observer?.onOperation === undefined) return;
  const site = { primitive: "queue", op, name: q.name, ...(attributes === undefined ? {} : { attributes }) };
  reportOperation(q.opts.observer, site, start, outcome, error);
}
