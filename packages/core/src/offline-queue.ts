import type { RedisClient } from "./client.js";
import { isCluster } from "./client.js";

/** What ioredis keeps per command waiting in a connection's offline queue (internal to ioredis). */
interface QueuedCommand {
  readonly name: string;
  readonly isSettled?: boolean;
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
function drop(queue: OfflineQueue, command: QueuedCommand): boolean {
  let at = -1;
  for (let i = 0; i < queue.length; i++) {
    const queued = queue.peekAt(i)?.command;
    if (queued === command) at = i;
    else if (queued?.name === "multi" || queued?.name === "exec") return false;
  }
  if (at < 0) return false;
  queue.removeOne(at);
  return true;
}

/** Commands of a pipeline rejected while they waited in the offline queue (ioredis 5 has no `isSettled`). */
const rejectedInQueue = new WeakSet<QueuedCommand>();

/**
 * Takes the commands of one pipeline (those queued with `stream`) out of `queue` once every one of them has been
 * rejected, `command` being the last: one taken out alone would leave the others unwritten (a pipeline writes its
 * commands together, once all of them are handed to the connection) and the replies out of step. With
 * `enableAutoPipelining`, every command, script calls included, is sent as a pipeline like this one. Not while the
 * queue holds a transaction (see {@link drop}).
 */
function dropPipeline(queue: OfflineQueue, stream: unknown, command: QueuedCommand): void {
  rejectedInQueue.add(command);
  const at: number[] = [];
  for (let i = 0; i < queue.length; i++) {
    const item = queue.peekAt(i);
    if (item?.command.name === "multi" || item?.command.name === "exec") return;
    if (item?.stream !== stream) continue;
    if (item === undefined || !rejectedInQueue.has(item.command)) return;
    at.push(i);
  }
  for (let i = at.length - 1; i >= 0; i--) queue.removeOne(at[i] as number);
}

/** Commands that wait on purpose: a deadline of the client's own must not cut them short. */
const BLOCKING = new Set([
  "blpop",
  "brpop",
  "brpoplpush",
  "blmove",
  "blmpop",
  "bzpopmin",
  "bzpopmax",
  "bzmpop",
  "xread",
  "xreadgroup",
  "wait",
  "waitaof",
]);

/**
 * A Cluster client keeps commands in a queue of its own while it has no slot map (connecting, or reconnecting after
 * losing every node), with no timer: a call Coordis gave up on (its deadline) would be sent once the cluster is
 * reachable. A single command sent while the client is not ready is taken out of that queue and rejected
 * ("Command timed out") once `deadlineMs` has passed, if it is still there.
 */
function guardClusterQueue(cluster: Connection & { status?: string }, deadlineMs: number): void {
  const send = cluster.sendCommand as (...args: unknown[]) => unknown;
  (cluster as { sendCommand: unknown }).sendCommand = function (
    this: Connection & { status?: string },
    command: QueuedCommand,
    stream?: unknown,
    ...rest: unknown[]
  ) {
    const result = send.call(this, command, stream, ...rest);
    if (this.status !== "ready" && stream === undefined && !BLOCKING.has(command.name)) {
      const timer = setTimeout(() => {
        const queue = this.offlineQueue;
        if (command.isSettled !== true && queue !== undefined && drop(queue, command)) {
          command.reject(new Error("Command timed out"));
        }
      }, deadlineMs);
      timer.unref?.();
    }
    return result;
  };
}

/**
 * Keeps a command that failed while it waited for the connection (ioredis' offline queue: the client was connecting
 * or reconnecting) from being sent once the connection is back. ioredis times such a command out (commandTimeout)
 * and rejects its promise, but leaves it in the queue and sends it after the reconnect: a call its caller was told
 * had failed would run later, behind the caller's back (a rate-limit unit taken twice when the caller retries, a
 * lock acquired for nobody). Wraps the connection's `sendCommand` once: a single command it puts in the offline queue
 * is taken out of it when it is rejected, a pipeline's commands (with enableAutoPipelining, every command's) together
 * once all of them were (nothing while the queue holds a MULTI ... EXEC). A standalone or Sentinel client; on a
 * Cluster client, its own queue (see guardClusterQueue; `clusterDeadlineMs` is Coordis' deadline of a call on it).
 */
export function guardOfflineQueue(redis: RedisClient, clusterDeadlineMs: number): void {
  if (guarded.has(redis)) return;
  const connection = redis as unknown as Connection;
  if (typeof connection.sendCommand !== "function") return;
  guarded.add(redis);
  if (isCluster(redis)) {
    guardClusterQueue(connection, clusterDeadlineMs);
    return;
  }
  const send = connection.sendCommand;
  connection.sendCommand = function (this: Connection, command: QueuedCommand, stream?: unknown) {
    const result = send.call(this, command, stream);
    const queue = this.offlineQueue;
    // Its rejection takes it out of the queue first: a single command at once, one of a pipeline (every command with
    // enableAutoPipelining) with the rest of that pipeline once all of them were rejected (see dropPipeline). The
    // promise itself is left alone (no handler added: an unawaited rejection is still reported as unhandled).
    if (queue !== undefined && queue.length > 0 && queue.peekAt(queue.length - 1)?.command === command) {
      const reject = command.reject;
      command.reject = function (this: QueuedCommand, err: Error) {
        if (stream === undefined) drop(queue, command);
        else dropPipeline(queue, stream, command);
        return reject.call(this, err);
      };
    }
    return result;
  };
}
