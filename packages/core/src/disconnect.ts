import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis";
import { isCluster } from "./client.js";
import { failPrevCommands } from "./in-flight.js";

/**
 * How long a connection of Coordis' own (a subscriber, a blocking reader) may take to close gracefully before its
 * sockets are destroyed, ms. Pass it as the ioredis `disconnectTimeout` of such a connection
 * ({@link ownConnectionOptions}) so ioredis' own close timer never outlives {@link disconnectWithin}.
 */
export const DISCONNECT_GRACE_MS = 250;

/** Default bound of {@link disconnectWithin}, ms. */
export const DEFAULT_DISCONNECT_TIMEOUT_MS = 1_000;

/**
 * The ioredis options a primitive gives a connection it opens itself (see {@link duplicateOwn}):
 * `disconnectTimeout` {@link DISCONNECT_GRACE_MS} (see {@link disconnectWithin}), and `enableOfflineQueue: true`:
 * such a connection sends its first commands (a SUBSCRIBE) while it is still connecting, and a client built with
 * `enableOfflineQueue: false` would have them refused ("Stream isn't writeable") although Redis is up.
 */
export function ownConnectionOptions(): { disconnectTimeout: number; enableOfflineQueue: true } {
  return { disconnectTimeout: DISCONNECT_GRACE_MS, enableOfflineQueue: true };
}

/**
 * A connection of a primitive's own (a subscriber, a blocking reader): a duplicate of `redis` with its settings
 * (credentials, TLS, ...), {@link ownConnectionOptions} and `options` on top. For a Cluster, those go under its
 * `redisOptions`, merged with the client's own (not replacing them), with `clusterOptions` and the Cluster's own
 * offline queue on. Close it with {@link disconnectWithin}.
 */
export function duplicateOwn(redis: Cluster, options?: Partial<RedisOptions>, clusterOptions?: ClusterOptions): Cluster;
export function duplicateOwn(redis: Redis, options?: Partial<RedisOptions>): Redis;
export function duplicateOwn(
  redis: Redis | Cluster,
  options?: Partial<RedisOptions>,
  clusterOptions?: ClusterOptions,
): Redis | Cluster;
export function duplicateOwn(
  redis: Redis | Cluster,
  options: Partial<RedisOptions> = {},
  clusterOptions: ClusterOptions = {},
): Redis | Cluster {
  const own = { ...ownConnectionOptions(), ...options };
  return isCluster(redis)
    ? redis.duplicate([], {
        enableOfflineQueue: true,
        ...clusterOptions,
        redisOptions: { ...redis.options.redisOptions, ...own },
      })
    : redis.duplicate(own);
}

/** ioredis' queue of commands to send again after a reconnect (a deque; internal). */
interface StreamHolder {
  readonly stream?: { destroy(): void } | undefined;
}

/** A socket of one of a Cluster's connections, as Node's `net.Socket` has it. */
interface ClusterSocket {
  readonly closed?: boolean;
  readonly destroyed?: boolean;
  once(event: "close", listener: () => void): unknown;
  off(event: "close", listener: () => void): unknown;
  destroy(): void;
}

/**
 * The sockets behind a Cluster whose close its `end` does not wait for: the node pool's connections (ioredis resets
 * the pool and emits `end` at once, while each node's socket closes gracefully or is destroyed after its
 * `disconnectTimeout`), the broadcast subscriber (`cluster.subscriber.subscriber`) and the sharded subscribers
 * (`cluster.shardedSubscribers`, one per shard, ioredis 6). Internals, read defensively (absent in other versions:
 * nothing found); taken before `disconnect()`, which forgets the connections. A socket closed already is left out.
 */
function clusterSockets(client: Cluster): ClusterSocket[] {
  const c = client as unknown as {
    subscriber?: { subscriber?: { stream?: ClusterSocket } | null };
    shardedSubscribers?: { shardedSubscribers?: Map<string, { instance?: { stream?: ClusterSocket } | null }> };
  };
  const found: Array<ClusterSocket | undefined> = [c.subscriber?.subscriber?.stream];
  for (const node of client.nodes("all") as unknown as Array<{ stream?: ClusterSocket }>) found.push(node.stream);
  const sharded = c.shardedSubscribers?.shardedSubscribers;
  if (sharded instanceof Map) for (const s of sharded.values()) found.push(s.instance?.stream);
  return found.filter(
    (s): s is ClusterSocket =>
      s != null && typeof s.once === "function" && typeof s.off === "function" && s.closed !== true,
  );
}

/**
 * The socket of a standalone connection, read when it is to be destroyed (a reconnect replaces it). A Cluster's
 * sockets are those of {@link clusterSockets}, taken before `disconnect()` empties its node pool.
 */
function standaloneSocket(client: Redis | Cluster): { destroy(): void } | undefined {
  return isCluster(client) ? undefined : (client as unknown as StreamHolder).stream;
}

/**
 * Closes a connection Coordis opened itself (never the user's client), bounded in time: resolves when the
 * connection has ended, and at the latest after `timeoutMs`, when whatever is left of it is destroyed.
 *
 * ioredis' `disconnect()` does not always end a connection: called while it waits to reconnect after an outage it
 * stops the reconnection but never reaches `end`, leaves the commands queued for the reconnect waiting for their
 * command timeout, and its graceful close keeps a timer (`disconnectTimeout`) running after the socket is gone.
 * Here those commands fail at once ("Connection is closed."), as on a live connection's close. A connection created with {@link ownConnectionOptions} and closed with this function
 * leaves nothing behind (no socket, no timer) once the promise resolves.
 */
export function disconnectWithin(client: Redis | Cluster, timeoutMs = DEFAULT_DISCONNECT_TIMEOUT_MS): Promise<void> {
  if (client.status === "end") return Promise.resolve();
  // Waiting to reconnect (or never connected): there is no socket to close gracefully, only ioredis' close timer
  // (its disconnectTimeout) to outlive, which never fires later than the grace period.
  const idle = client.status === "reconnecting" || client.status === "wait";
  const bound = idle ? Math.min(timeoutMs, DISCONNECT_GRACE_MS + 10) : timeoutMs;
  // A Cluster's "end" comes before its nodes' and subscribers' connections have closed: their sockets are waited for.
  const sockets = isCluster(client) ? clusterSockets(client) : [];
  return new Promise<void>((resolve) => {
    let waiting = 1 + sockets.length;
    const ended = () => {
      waiting--;
      if (waiting === 0) finish();
    };
    const finish = () => {
      clearTimeout(timer);
      client.off("end", ended);
      for (const s of sockets) s.off("close", ended);
      resolve();
    };
    const timer = setTimeout(() => {
      standaloneSocket(client)?.destroy();
      for (const socket of sockets) socket.destroy();
      finish();
    }, bound);
    for (const s of sockets) s.once("close", ended);
    client.once("end", ended);
    client.disconnect();
    if (client.status === "end" && waiting === 1) {
      finish();
      return;
    }
    // Commands queued for a reconnect that will never come would keep their command-timeout timers running (and
    // settle only then): fail them now, as a close does on a live connection. ioredis' own close path, not reached
    // here; absent (Cluster, other versions) = nothing to do.
    const flush = (client as unknown as { flushQueue?: (error: Error) => void }).flushQueue;
    if (idle && typeof flush === "function") flush.call(client, new Error("Connection is closed."));
    // Commands in flight when the connection dropped wait in ioredis' prevCommandQueue to be sent again once it is
    // ready, which a closed connection never is, and no close path rejects them (a blocking read would keep its
    // command-timeout timer): fail them now too.
    failPrevCommands(client);
  });
}
