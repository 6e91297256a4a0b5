import type { RedisClient } from "./client.js";
import { isCluster } from "./client.js";

/** What ioredis keeps per command waiting in a connection's offline queue (internal to ioredis). */
interface QueuedCommand {
  readonly name: string;
  reject: (err: Error) => void;
}

/** ioredis' offline queue (a denque of `{ command, stream, select }`), internal to ioredis. */
interface OfflineQueue {
  readonly length: number;
  peekAt(index: number): { command: QueuedCommand; stream?: unknown } | undefined;
  removeOne(index: number): unknown;
}

interface Connection {
  sendCommand(command: QueuedCommand, stream?: unknown): unknown;
  offlineQueue?: OfflineQueue;
}

const guarded = new WeakSet<object>();

/**
 * Takes `command` out of `queue` when it is still there, unless the queue holds a transaction (MULTI ... EXEC): a
 * command taken out of one would run outside it, so the queue is left as ioredis keeps it.
 */
function drop(queue: OfflineQueue, command: QueuedCommand): void {
  let at = -1;
  for (let i = 0; i < queue.length; i++) {
    const queued = queue.peekAt(i)?.command;
    if (queued === command) at = i;
    else if (queued?.name === "multi" || queued?.name === "exec") return;
  }
  if (at >= 0) queue.removeOne(at);
}

/**
 * Keeps a command that failed while it waited for the connection (ioredis' offline queue: the client was connecting
 * or reconnecting) from being sent once the connection is back. ioredis times such a command out (commandTimeout)
 * and rejects its promise, but leaves it in the queue and sends it after the reconnect: a call its caller was told
 * had failed would run later, behind the caller's back (a rate-limit unit taken twice when the caller retries, a
 * lock acquired for nobody). Wraps the connection's `sendCommand` once: a single command it puts in the offline queue
 * is taken out of it when it is rejected (not a pipeline's, nor while the queue holds a MULTI ... EXEC). A standalone
 * or Sentinel client; a Cluster's own queue is not covered.
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
    // A single command (not one of a pipeline, whose commands are written together: taking one out would leave the
    // others unwritten and the replies out of step). Its rejection takes it out of the queue first; the promise
    // itself is left alone (no handler added: an unawaited rejection is still reported as unhandled).
    if (
      stream === undefined &&
      queue !== undefined &&
      queue.length > 0 &&
      queue.peekAt(queue.length - 1)?.command === command
    ) {
      const reject = command.reject;
      command.reject = function (this: QueuedCommand, err: Error) {
        drop(queue, command);
        return reject.call(this, err);
      };
    }
    return result;
  };
}
