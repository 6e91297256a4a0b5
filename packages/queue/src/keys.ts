import { entityKeys, hashTagOf, InvalidArgumentError, validateName } from "@coordis/core";

/**
 * The 13 keys most scripts take, in the order of lua/_lib/queue.lua's q_keys(): each is
 * `<prefix>:queue:{<tag>}:<kind>`.
 */
const SCRIPT_KEYS = [
  "jobs",
  "ready",
  "delayed",
  "prio",
  "leases",
  "active",
  "done",
  "dead",
  "cancelled",
  "meta",
  "groups",
  "gwait",
  "wake",
] as const;

/**
 * The keys of one partition of a queue. They share one hash tag, so every script runs in one slot: `{<name>}` for a
 * queue of one partition, `{<name>#<i>}` for partition i of several.
 */
export type PartitionKeys = { readonly [K in (typeof SCRIPT_KEYS)[number]]: string } & {
  /** Partition index. */
  readonly index: number;
  readonly sched: string;
  readonly schedz: string;
  /** Sharded pub/sub channel announcing finished jobs (same hash tag as the keys). */
  readonly channel: string;
  /** The 13 keys most scripts take, in the order of lua/_lib/queue.lua's q_keys(). */
  readonly all: readonly string[];
};

/** Longest queue name, UTF-8 bytes (room is left for the partition suffix of the hash tag). */
export const MAX_QUEUE_NAME_BYTES = 500;

/**
 * Validates a queue name: 1–500 UTF-8 bytes, no `{` or `}`, not ending in `#` and digits (the hash tag of queue `a`'s
 * partition 1 is `{a#1}`: a queue named `a#1` would share its keys). @throws InvalidArgumentError
 */
export function validateQueueName(name: unknown, argument = "name"): string {
  const value = validateName(name, argument);
  if (Buffer.byteLength(value, "utf8") > MAX_QUEUE_NAME_BYTES) {
    throw new InvalidArgumentError(argument, `must be at most ${MAX_QUEUE_NAME_BYTES} bytes in UTF-8`);
  }
  const partition = /^(.*)#(\d+)$/s.exec(value);
  if (partition !== null) {
    const [, base, index] = partition;
    throw new InvalidArgumentError(
      argument,
      `must not end in "#" and digits: {${value}} is the hash tag of partition ${index} of queue "${base}" (use "${base}-${index}", say)`,
    );
  }
  return value;
}

/** The keys of the partition of hash tag `tag` (index `index`). */
function partitionKeys(prefix: string, tag: string, index: number): PartitionKeys {
  const k = entityKeys(prefix, "queue", tag);
  const all = Object.freeze(SCRIPT_KEYS.map((kind) => k.sub(kind)));
  const named = Object.fromEntries(SCRIPT_KEYS.map((kind, i) => [kind, all[i]])) as Record<
    (typeof SCRIPT_KEYS)[number],
    string
  >;
  return Object.freeze({
    ...named,
    index,
    sched: k.sub("sched"),
    schedz: k.sub("schedz"),
    channel: k.sub("events"),
    all,
  });
}

/** The keys of every partition of queue `name`. */
export function queueKeys(prefix: string, name: string, partitions: number): PartitionKeys[] {
  return Array.from({ length: partitions }, (_, index) =>
    partitionKeys(prefix, partitions === 1 ? name : `${name}#${index}`, index),
  );
}

/**
 * The hash holding the queue's recorded partition count (field `partitions`): the meta hash of the queue's own hash
 * tag `{<name>}`, whatever its partitions (for one partition, that partition's meta hash).
 */
export function queueMetaKey(prefix: string, name: string): string {
  return partitionKeys(prefix, name, 0).meta;
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
