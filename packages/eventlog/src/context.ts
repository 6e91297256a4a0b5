import { type CoordisObserver, type OperationSite, type RedisClient, withCommandDeadline } from "@coordis/core";
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
  /** The largest encoded event this instance appends (`maxEventBytes`): what sizes the reads of internal walks. */
  readonly maxEventBytes: number;
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
