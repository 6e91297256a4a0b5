import {
  type CoordisObserver,
  disconnectWithin,
  isCluster,
  type OperationSite,
  ownConnectionOptions,
  type RedisClient,
  withCommandDeadline,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import type { ChainMode } from "./chain.js";
import type { UnverifiedMode } from "./options.js";
import type { EventLogKeys } from "./types.js";

/**
 * What the parts of one log share: built once by the {@link EventLog} facade and handed to its appender, reads,
 * tails, groups and consumers, so none of them needs the facade (imports point one way: the facade uses them).
 * @internal
 */
export interface LogContext {
  readonly redis: RedisClient;
  readonly name: string;
  readonly keys: EventLogKeys;
  readonly observer: CoordisObserver | undefined;
  /** How entries are chained, or undefined for a log without a chain. */
  readonly chainMode: ChainMode | undefined;
  /** Default of read()'s and tail()'s `unverified`. */
  readonly unverified: UnverifiedMode;
}

/** A group a consumer reads for: its names and the creation of the group in Redis. @internal */
export interface GroupHandle {
  readonly log: LogContext;
  readonly name: string;
  readonly consumer: string;
  /** Creates the group unless it exists (once; again after a failure). */
  create(): Promise<void>;
  /**
   * After NOGROUP (the stream or group was deleted): creates the group again, from the start of the stream, and
   * reports the event `group-recreated` when this call created it.
   */
  recreate(): Promise<void>;
}

/** Room on top of `blockMs` for a blocking read's command timeout, ms. */
const BLOCK_TIMEOUT_MARGIN_MS = 5_000;

/**
 * A connection of the log's own for blocking reads (a tail's XREAD, a consumer's XREADGROUP): a duplicate of the
 * client with its settings (credentials, TLS, ...; for a Cluster its `redisOptions` merged, not replaced), a command
 * timeout above `blockMs` and core's {@link ownConnectionOptions}. Close it with {@link closeBlockingConnection}.
 */
export function openBlockingConnection(redis: RedisClient, blockMs: number): Redis | Cluster {
  const own = { ...ownConnectionOptions(), commandTimeout: blockMs + BLOCK_TIMEOUT_MARGIN_MS };
  const conn = isCluster(redis)
    ? redis.duplicate([], { redisOptions: { ...redis.options.redisOptions, ...own } })
    : redis.duplicate(own);
  // Failures surface as rejected commands (reported by their callers); no unhandled "error" events.
  conn.on("error", () => {});
  return conn;
}

/**
 * A blocking read sent on `conn` (see {@link openBlockingConnection}), failing as soon as its connection closes. A
 * command in flight when a standalone connection drops is never answered: Coordis clients do not send it again after
 * the reconnect (`autoResendUnfulfilledCommands: false`), so it would wait for its command timeout (`blockMs` + 5 s),
 * and the tail or consumer with it. (A Cluster's node connections do not reconnect themselves: ioredis fails their
 * commands on close.)
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
 * Resolves once `conn` is connected and ready, or `signal` aborted. A blocking read is sent only then: one issued
 * while the connection reconnects would wait in ioredis' offline queue and be written after the reconnect, also when
 * its caller gave up on it meanwhile (a close fails it, see {@link blockingRead}, and the caller retries), delivering
 * entries to nobody until they are reclaimed. (A Cluster queues commands itself: sent as before.)
 */
export function whenReady(conn: Redis | Cluster, signal: AbortSignal): Promise<void> | undefined {
  if (isCluster(conn) || conn.status === "ready" || signal.aborted) return undefined;
  return new Promise<void>((resolve) => {
    const done = () => {
      conn.off("ready", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    conn.on("ready", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Connections being closed: a second close of the same one does nothing. */
const closing = new WeakSet<Redis | Cluster>();

/**
 * Closes a connection of {@link openBlockingConnection} without waiting (bounded: ended, or destroyed after
 * disconnectWithin's bound); ends a blocking read at once. Closing it again does nothing.
 */
export function closeBlockingConnection(conn: Redis | Cluster | undefined): void {
  if (conn === undefined || closing.has(conn)) return;
  closing.add(conn);
  void disconnectWithin(conn);
}

/**
 * A plain command sent on the log's client (`pending`, named by `what`), bounded as a script call on that client is: by
 * its commandTimeout, or, on a client without one (and on a Cluster), by Coordis' own deadline (core's
 * `withCommandDeadline`), past which it rejects with RedisUnavailableError. Without it, a command whose request or reply
 * was lost (a partition; a connection reset, after which Coordis clients do not send it again) would never settle on a
 * client without commandTimeout, and whatever awaits it (a consumer's loop, its XACK, a tail, a read) would wait forever.
 */
export function bounded<V>(ctx: LogContext, pending: Promise<V>, what: string): Promise<V> {
  return withCommandDeadline(ctx.redis, pending, `${what} of log "${ctx.name}"`);
}

/** The constant part of a log's operation reports. */
export function site(ctx: LogContext, op: string, attributes?: OperationSite["attributes"]): OperationSite {
  return { primitive: "eventlog", op, name: ctx.name, ...(attributes === undefined ? {} : { attributes }) };
}
