import type { RedisClient } from "./client.js";
import { isCluster } from "./client.js";

/** What ioredis keeps per command waiting in a connection's offline queue (internal to ioredis). */
interface QueuedCommand {
  readonly promise: Promise<unknown>;
}

/** ioredis' offline queue (a denque of `{ command, stream, select }`), internal to ioredis. */
interface OfflineQueue {
  readonly length: number;
  peekAt(index: number): { command: QueuedCommand } | undefined;
  removeOne(index: number): unknown;
}

interface Connection {
  sendCommand(command: QueuedCommand, stream?: unknown): unknown;
  offlineQueue?: OfflineQueue;
}

const guarded = new WeakSet<object>();

/** Takes `command` out of `queue` when it is still there. */
function drop(queue: OfflineQueue, command: QueuedCommand): void {
  for (let i = 0; i < queue.length; i++) {
    if (queue.peekAt(i)?.command === command) {
      queue.removeOne(i);
      return;
    }
  }
}

/**
 * Keeps a command that failed while it waited for the connection (ioredis' offline queue: the client was connecting
 * or reconnecting) from being sent once the connection is back. ioredis times such a command out (commandTimeout)
 * and rejects its promise, but leaves it in the queue and sends it after the reconnect: a call its caller was told
 * had failed would run later, behind the caller's back (a rate-limit unit taken twice when the caller retries, a
 * lock acquired for nobody). Wraps the connection's `sendCommand` once: a command it puts in the offline queue is
 * taken out of it when its promise rejects. A standalone or Sentinel client; a Cluster's own queue is not covered.
 */
export function guardOfflineQueue(redis: RedisClient): void {
  if (isCluster(redis) || guarded.has(redis)) return;
  const connection = redis as unknown as Connection;
  if (typeof connection.sendCommand !== "function") return;
  guarded.add(redis);
  const send = connection.sendCommand;
  connection.sendCommand = function (this: Connection, command: QueuedCommand, stream?: unknown) {
    const result = send.call(this, command, stream);
    const queue = this.offlineQueue;
    if (queue !== undefined && queue.length > 0 && queue.peekAt(queue.length - 1)?.command === command) {
      command.promise.catch(() => drop(queue, command));
    }
    return result;
  };
}
