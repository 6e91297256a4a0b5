import { entityKeys, hashTagOf, InvalidArgumentError, validateName } from "@coordis/core";

/**
 * The keys of one partition of a queue. They share one hash tag, so every script runs in one slot: `{<name>}` for a
 * queue of one partition, `{<name>#<i>}` for partition i of several.
 */
export interface PartitionKeys {
  /** Partition index. */
  readonly index: number;
  readonly jobs: string;
  readonly ready: string;
  readonly delayed: string;
  readonly prio: string;
  readonly leases: string;
  readonly active: string;
  readonly done: string;
  readonly dead: string;
  readonly cancelled: string;
  readonly meta: string;
  readonly groups: string;
  readonly gwait: string;
  readonly wake: string;
  readonly sched: string;
  readonly schedz: string;
  /** Sharded pub/sub channel announcing finished jobs (same hash tag as the keys). */
  readonly channel: string;
  /** The 13 keys most scripts take, in the order of lua/_lib/queue.lua's q_keys(). */
  readonly all: readonly string[];
}

/** Longest queue name, UTF-8 bytes (room is left for the partition suffix of the hash tag). */
export const MAX_QUEUE_NAME_BYTES = 500;

/** Validates a queue name: 1–500 UTF-8 bytes, no `{` or `}`. @throws InvalidArgumentError */
export function validateQueueName(name: unknown, argument = "name"): string {
  const value = validateName(name, argument);
  if (Buffer.byteLength(value, "utf8") > MAX_QUEUE_NAME_BYTES) {
    throw new InvalidArgumentError(argument, `must be at most ${MAX_QUEUE_NAME_BYTES} bytes in UTF-8`);
  }
  return value;
}

/** The keys of every partition of queue `name`. */
export function queueKeys(prefix: string, name: string, partitions: number): PartitionKeys[] {
  const out: PartitionKeys[] = [];
  for (let index = 0; index < partitions; index++) {
    const k = entityKeys(prefix, "queue", partitions === 1 ? name : `${name}#${index}`);
    const jobs = k.sub("jobs");
    const ready = k.sub("ready");
    const delayed = k.sub("delayed");
    const prio = k.sub("prio");
    const leases = k.sub("leases");
    const active = k.sub("active");
    const done = k.sub("done");
    const dead = k.sub("dead");
    const cancelled = k.sub("cancelled");
    const meta = k.sub("meta");
    const groups = k.sub("groups");
    const gwait = k.sub("gwait");
    const wake = k.sub("wake");
    out.push(
      Object.freeze({
        index,
        jobs,
        ready,
        delayed,
        prio,
        leases,
        active,
        done,
        dead,
        cancelled,
        meta,
        groups,
        gwait,
        wake,
        sched: k.sub("sched"),
        schedz: k.sub("schedz"),
        channel: k.sub("events"),
        all: Object.freeze([
          jobs,
          ready,
          delayed,
          prio,
          leases,
          active,
          done,
          dead,
          cancelled,
          meta,
          groups,
          gwait,
          wake,
        ]),
      }),
    );
  }
  return out;
}

/**
 * The hash holding the queue's recorded partition count (field `partitions`): the meta hash of the queue's own hash
 * tag `{<name>}`, whatever its partitions (for one partition, that partition's meta hash).
 */
export function queueMetaKey(prefix: string, name: string): string {
  return entityKeys(prefix, "queue", name).sub("meta");
}

/**
 * The partition of a job id: FNV-1a of the id's hash tag (the text between the first `{` and the next `}` when
 * non-empty, as Redis Cluster reads keys; otherwise the whole id), modulo `partitions`.
 */
export function partitionOf(id: string, partitions: number): number {
  if (partitions === 1) return 0;
  const tag = hashTagOf(id);
  let h = 0x811c9dc5;
  for (let i = 0; i < tag.length; i++) {
    h ^= tag.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

/** The id of the job a schedule makes for its run at `dueAt` (server ms): in the schedule's own partition. */
export function scheduledJobId(schedule: string, dueAt: number): string {
  return `{schedule:${schedule}}${dueAt}`;
}

/** The partition holding schedule `name` (and the jobs it makes). */
export function schedulePartition(name: string, partitions: number): number {
  return partitionOf(scheduledJobId(name, 0), partitions);
}
