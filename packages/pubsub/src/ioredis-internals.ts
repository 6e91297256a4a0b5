import type { Cluster, Redis } from "ioredis";

// Readers of ioredis internals (ioredis 5 and 6), each defensive: what is not found is treated as absent.

/**
 * The connections of a sharded Cluster subscriber that are up: one per shard with subscriptions (ioredis 6 internals,
 * `cluster.shardedSubscribers`, read defensively: none found in other versions).
 */
export function shardSubscribers(cluster: Cluster): Redis[] {
  const group = (cluster as unknown as { shardedSubscribers?: { shardedSubscribers?: unknown } }).shardedSubscribers;
  const shards = group?.shardedSubscribers;
  if (!(shards instanceof Map)) return [];
  const found: Redis[] = [];
  for (const shard of shards.values() as Iterable<{ instance?: Redis | null }>) {
    if (shard.instance != null && typeof shard.instance.ping === "function") found.push(shard.instance);
  }
  return found;
}

/**
 * Whether a shard subscriber of a sharded `cluster` failed to connect (ioredis 6 internals, read defensively): ioredis
 * reports its subscribers ready after each try at its topology, also when the connection to a shard's master failed
 * (the master is down), and tries again moments later.
 */
export function shardSubscriberFailed(cluster: Cluster): boolean {
  const group = (cluster as unknown as { shardedSubscribers?: { shardedSubscribers?: unknown } }).shardedSubscribers;
  const shards = group?.shardedSubscribers;
  if (!(shards instanceof Map)) return false;
  for (const shard of shards.values() as Iterable<{ isHealthy?: () => boolean }>) {
    if (typeof shard.isHealthy === "function" && !shard.isHealthy()) return true;
  }
  return false;
}

/**
 * Whether one of `channels` (Redis channel names) may have lost its shard subscriber connection on a sharded
 * `cluster`: the subscriber ioredis holds responsible for its slot is missing, ended or not ready (ioredis 6
 * internals, `clusterSlots` and `shardedSubscribers` of the subscriber group, read defensively: true when not found,
 * so a loss is never missed). A shard subscriber that ended while holding none of them is no loss.
 */
export function shardOfChannelsDown(
  cluster: Cluster,
  channels: Iterable<string>,
  slotOf: (key: string) => number,
): boolean {
  type Shard = { isHealthy?: () => boolean; instance?: Redis | null };
  const group = (
    cluster as unknown as { shardedSubscribers?: { clusterSlots?: unknown; shardedSubscribers?: unknown } }
  ).shardedSubscribers;
  const slots = group?.clusterSlots;
  const shards = group?.shardedSubscribers;
  if (!Array.isArray(slots) || !(shards instanceof Map)) return true;
  for (const channel of channels) {
    const owners: unknown = slots[slotOf(channel)];
    const shard = Array.isArray(owners) ? (shards.get(owners[0]) as Shard | undefined) : undefined;
    if (shard === undefined || typeof shard.isHealthy !== "function" || !shard.isHealthy()) return true;
    if (shard.instance == null || shard.instance.status !== "ready") return true;
  }
  return false;
}

/**
 * A heartbeat PING that waits for its answer however late it comes: the client's command timeout does not fail it
 * (sendCommand reads the option when the command is sent). The heartbeat asks whether the connection answers before
 * the next beat; a PING answered after the command timeout (Redis busy for a moment, this process's event loop
 * blocked) came from a live connection, which must not be dropped as silent. One never answered settles when its
 * connection closes, which the next beat brings about.
 */
export function pingUntimed(conn: Redis): Promise<unknown> {
  const timeout = conn.options.commandTimeout;
  conn.options.commandTimeout = undefined;
  try {
    return conn.ping();
  } finally {
    conn.options.commandTimeout = timeout;
  }
}

/** Bytes the connection's socket has read so far (-1 without a socket: nothing is ever read then). */
export function bytesRead(conn: Redis): number {
  return (conn as unknown as { stream?: { bytesRead?: number } }).stream?.bytesRead ?? -1;
}

/**
 * Calls `fn` when a shard subscriber of a sharded `cluster` reports a moved slot: Redis ended its sharded
 * subscriptions of a slot that migrated (an unsolicited SUNSUBSCRIBE), or an SSUBSCRIBE was answered MOVED. ioredis
 * then refreshes its slot map and subscribes again on the new owner (internal: `cluster.subscriberGroupEmitter`,
 * ioredis 6; nothing is watched when it is absent).
 */
export function onShardMoved(cluster: Cluster, fn: () => void): void {
  const emitter = (cluster as unknown as { subscriberGroupEmitter?: { on?: unknown } }).subscriberGroupEmitter;
  if (emitter !== undefined && typeof emitter.on === "function") {
    (emitter as { on(event: string, listener: () => void): void }).on("moved", fn);
  }
}
