import type { RedisClient } from "./client.js";
import { isCluster } from "./client.js";

/** What ioredis keeps per command sent and not answered yet (internal to ioredis). */
interface SentCommand {
  readonly command?: { reject?: (err: Error) => void };
}

/** ioredis' queue of commands sent and not answered (a denque), internal to ioredis. */
interface CommandDeque {
  shift(): SentCommand | undefined;
}

interface Connection {
  readonly options?: { autoResendUnfulfilledCommands?: boolean };
  on(event: "close", listener: () => void): unknown;
}

/**
 * Fails ("Connection is closed.") the commands a closed connection holds in ioredis' prevCommandQueue: those in flight
 * when it closed, which ioredis keeps to re-send once it is ready again, or, not re-sending them, to throw away then,
 * unsettled. Absent (a Cluster, other versions): nothing to do.
 */
export function failPrevCommands(client: object): void {
  const prev = (client as { prevCommandQueue?: CommandDeque | null }).prevCommandQueue;
  if (prev == null || typeof prev.shift !== "function") return;
  for (let item = prev.shift(); item !== undefined; item = prev.shift()) {
    item.command?.reject?.(new Error("Connection is closed."));
  }
}

const guarded = new WeakSet<object>();

/**
 * Fails at once the commands a standalone or Sentinel client had sent and not seen answered when its connection
 * closed (a dropped connection, a Redis restart, a failover the client follows), as "Connection is closed." (a
 * `RedisUnavailableError` to Coordis' callers). A client that does not re-send unanswered commands
 * (`autoResendUnfulfilledCommands: false`, which Coordis asks for) keeps them after the close only to throw them away
 * once it is connected again, never settling them: each waited for its command timeout (2 s with `safeRedisOptions`)
 * although the client was back after a few ms. Their outcome is unknown either way (Redis may have run them), which
 * is what the error says; nothing is sent again. Listens once per client; a Cluster's node connections are left as
 * ioredis handles them. A client that re-sends them is left alone.
 */
export function failInFlightOnClose(redis: RedisClient): void {
  if (guarded.has(redis) || isCluster(redis)) return;
  const connection = redis as unknown as Connection;
  if (connection.options?.autoResendUnfulfilledCommands !== false || typeof connection.on !== "function") return;
  guarded.add(redis);
  // ioredis moves the commands in flight to prevCommandQueue when a ready connection closes (and emits "close" on the
  // next tick, before any reconnect), then drops that queue once connected again. Emptied here, it drops nothing.
  connection.on("close", () => failPrevCommands(redis));
}
