import type { Cluster, Redis } from "ioredis";
import { onAbort } from "./abort.js";
import type { RedisClient } from "./client.js";
import { isCluster } from "./client.js";
import { disconnectWithin, duplicateOwn } from "./disconnect.js";

/** Room on top of `blockMs` for a blocking read's command timeout, ms. */
export const BLOCK_TIMEOUT_MARGIN_MS = 5_000;

/**
 * A connection of a primitive's own for blocking reads (a tail's XREAD, a consumer's XREADGROUP, an idle queue
 * worker's XREAD): {@link duplicateOwn} of the client with a command timeout above `blockMs`. Its
 * failures surface as rejected commands, never as unhandled "error" events. Close it with
 * {@link closeBlockingConnection}.
 */
export function openBlockingConnection(redis: RedisClient, blockMs: number): Redis | Cluster {
  const conn = duplicateOwn(redis, { commandTimeout: blockMs + BLOCK_TIMEOUT_MARGIN_MS });
  conn.on("error", () => {});
  return conn;
}

/**
 * A blocking read sent on `conn` (see {@link openBlockingConnection}), failing as soon as its connection closes. A
 * command in flight when a standalone or Sentinel connection drops (a restart, a failover the client follows) is never
 * answered: Coordis clients do not send it again after the reconnect (`autoResendUnfulfilledCommands: false`), so it
 * would wait for its command timeout (`blockMs` + 5 s), and its reader with it. (A Cluster's node connections do not
 * reconnect themselves: ioredis fails their commands on close.)
 */
export function blockingRead<V>(conn: Redis | Cluster, read: Promise<V>): Promise<V> {
  if (isCluster(conn)) return read;
  return new Promise<V>((resolve, reject) => {
    const onClose = () => reject(new Error("Connection is closed."));
    conn.once("close", onClose);
    read.then(
      (value) => {
        conn.off("close", onClose);
        resolve(value);
      },
      (err: unknown) => {
        conn.off("close", onClose);
        reject(err);
      },
    );
  });
}

/**
 * Resolves once `conn` is connected and ready, `signal` aborted, or `timeoutMs` passed (undefined when it is ready
 * already, or ended: a read on it then fails at once, as its caller should learn). A blocking read is sent only then:
 * one issued while the connection reconnects would wait in ioredis' offline queue and be written after the reconnect,
 * also when its caller gave up on it meanwhile (a close fails it, see {@link blockingRead}, and the caller retries),
 * delivering entries to nobody until they are reclaimed. A connection not opened yet (a duplicate of a `lazyConnect`
 * client) is opened here: nothing else would open it. (A Cluster queues commands itself: sent as before.) Its
 * listeners are removed however it ends.
 */
export function whenReady(conn: Redis | Cluster, signal: AbortSignal, timeoutMs?: number): Promise<void> | undefined {
  if (isCluster(conn) || conn.status === "ready" || conn.status === "end" || signal.aborted) return undefined;
  if (conn.status === "wait") conn.connect().catch(() => {});
  return new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      conn.off("ready", done);
      stop();
      resolve();
    };
    conn.on("ready", done);
    const stop = onAbort(signal, done);
    if (timeoutMs !== undefined) timer = setTimeout(done, timeoutMs);
  });
}

/** Connections being closed: a second close of the same one does nothing. */
const closing = new WeakSet<Redis | Cluster>();

/**
 * Closes a connection of {@link openBlockingConnection} without waiting (bounded: ended, or destroyed after
 * disconnectWithin's bound); ends a blocking read at once. Closing it again does nothing. Returns the close.
 */
export function closeBlockingConnection(conn: Redis | Cluster | undefined): Promise<unknown> {
  if (conn === undefined || closing.has(conn)) return Promise.resolve();
  closing.add(conn);
  return disconnectWithin(conn);
}
