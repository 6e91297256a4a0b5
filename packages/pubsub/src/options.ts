import {
  type CoordisObserver,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  keyHead,
  parseCodec,
  validate,
  validatePrefix,
} from "@coordis/core";
import { type Codec, jsonCodec } from "./codec.js";
import { HEARTBEAT_INTERVAL_MS } from "./connection.js";

/** Default bound of each subscription's queue of messages waiting for its handler. */
export const DEFAULT_QUEUE_LIMIT = 1_000;
/** Default largest encoded message, in bytes (1 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
/**
 * Bounds of the `heartbeatMs` option, ms. Below 100 ms a stall of Redis or of the network for a tenth of a second (a
 * fork for a snapshot, a GC pause) would drop healthy connections, and every subscriber would PING Redis more than ten
 * times a second. Above 10 min a silent loss would go unnoticed for up to 20 min, and the PINGs would no longer keep an
 * idle flow open through the NATs and load balancers that expire one after a few minutes.
 */
const HEARTBEAT_MS_RANGE = { min: 100, max: 600_000 } as const;

/**
 * @internal For Coordis' own packages: an option under this key names the key kind of the channels (default `"ps"`:
 * `<prefix>:ps:<channel>`). A package's internal channels (the cache's invalidation bus) live under a kind of their
 * own, out of reach of the channel names and patterns users give a PubSub.
 */
export const INTERNAL_CHANNEL_KIND: unique symbol = Symbol("@coordis/pubsub internal channel kind");

/**
 * A prefix segment, after the first, equal to a kind Coordis names channels with (`ps`, this package's; `cache-bus`,
 * the cache's invalidation bus, see {@link INTERNAL_CHANNEL_KIND}). Channel names may contain `:`, so with such a
 * prefix one PubSub's channels would be another's: `<a>:ps:<b>:ps:<channel>` is prefix `a` with channel
 * `b:ps:<channel>`, and prefix `a:ps:b` with channel `<channel>` (and `psubscribe("*")` under prefix `a` reads it).
 */
const RESERVED_SEGMENT = /:(ps|cache-bus)(?::|$)/;

/** Options of {@link PubSub}. */
export interface PubSubOptions {
  /** Encodes and decodes messages; default {@link jsonCodec}. */
  codec?: Codec;
  /**
   * Key prefix; channels are `<prefix>:ps:<channel>`. Default `"coordis"`. No segment after the first may be `ps` or
   * `cache-bus` (`"app:ps:chat"` is refused): that prefix's channels would be channels of another prefix.
   */
  prefix?: string;
  /** Receives `publish`/`subscribe` operations and `resubscribed`, `overflow`, `handler-error` events. */
  observer?: CoordisObserver;
  /** Messages a subscription may hold while its handler is busy (1–1,000,000); default {@link DEFAULT_QUEUE_LIMIT}. */
  queueLimit?: number;
  /** Largest encoded message in bytes (1 B – 512 MiB); default {@link DEFAULT_MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
  /**
   * Redis Cluster only: `true` (default) uses sharded pub/sub (SPUBLISH/SSUBSCRIBE, each channel lives on the
   * shard owning its slot); `false` uses classic PUBLISH/SUBSCRIBE, broadcast to every node, which pattern
   * subscriptions need. Publishers and subscribers of one channel must agree. Ignored on a standalone server.
   */
  sharded?: boolean;
  /**
   * Interval of the subscriber connections' heartbeat, ms (100–600,000); default {@link HEARTBEAT_INTERVAL_MS} (5 s).
   * Each subscriber connection sends a PING every interval while it has subscriptions, and one still unanswered at
   * the next beat has it replaced and resubscribed: a connection the network dropped silently is noticed within two
   * intervals. Shorter for a network whose NATs expire idle flows quickly; longer for fewer PINGs from many processes.
   */
  heartbeatMs?: number;
  /** @internal See {@link INTERNAL_CHANNEL_KIND}. */
  [INTERNAL_CHANNEL_KIND]?: string;
}

const OPTION_KEYS: readonly Exclude<keyof PubSubOptions, symbol>[] = [
  "codec",
  "prefix",
  "observer",
  "queueLimit",
  "maxMessageBytes",
  "sharded",
  "heartbeatMs",
];

/** {@link PubSubOptions} after validation, defaults filled in. */
export interface PubSubSettings {
  readonly prefix: string;
  /** `<prefix>:ps:`, in front of every channel and pattern. */
  readonly head: string;
  readonly codec: Codec;
  readonly observer: CoordisObserver | undefined;
  readonly queueLimit: number;
  readonly maxMessageBytes: number;
  /** As asked for; only a Cluster client uses it. */
  readonly sharded: boolean;
  readonly heartbeatMs: number;
}

/**
 * Validates the options of `new PubSub(redis, options)` as a whole: unknown keys are rejected too.
 * @throws InvalidArgumentError naming the option
 */
export function parsePubSubOptions(raw: unknown, argument = "options"): PubSubSettings {
  const o = validate.options<PubSubOptions>(argument, raw, OPTION_KEYS);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(o.prefix, `${argument}.prefix`);
  const kind = RESERVED_SEGMENT.exec(prefix)?.[1];
  if (kind !== undefined) {
    throw new InvalidArgumentError(
      `${argument}.prefix`,
      `must not have a "${kind}" segment after its first (got "${prefix}"): channels are <prefix>:ps:<channel> and channel names may contain ":", so its channels would be the channels of a shorter prefix (prefix "a" with channel "b:ps:x" is prefix "a:ps:b" with channel "x"); choose a prefix without it`,
    );
  }
  return {
    prefix,
    head: keyHead(prefix, internalKind(raw) ?? "ps"),
    codec: parseCodec(`${argument}.codec`, o.codec, jsonCodec),
    observer: validate.observer(`${argument}.observer`, o.observer),
    queueLimit:
      o.queueLimit === undefined
        ? DEFAULT_QUEUE_LIMIT
        : validate.positiveInteger(`${argument}.queueLimit`, o.queueLimit, 1_000_000),
    maxMessageBytes:
      o.maxMessageBytes === undefined
        ? DEFAULT_MAX_MESSAGE_BYTES
        : validate.positiveInteger(`${argument}.maxMessageBytes`, o.maxMessageBytes, 512 * 1024 * 1024),
    // Validated on every topology, even though only a Cluster client uses it.
    sharded: o.sharded === undefined ? true : validate.boolean(`${argument}.sharded`, o.sharded),
    heartbeatMs:
      o.heartbeatMs === undefined
        ? HEARTBEAT_INTERVAL_MS
        : validate.durationMs(`${argument}.heartbeatMs`, o.heartbeatMs, {
            ...HEARTBEAT_MS_RANGE,
            defaultMs: HEARTBEAT_INTERVAL_MS,
          }),
  };
}

/** The internal channel kind of `raw` (see {@link INTERNAL_CHANNEL_KIND}), if any. */
function internalKind(raw: unknown): string | undefined {
  if (raw === null || typeof raw !== "object") return undefined;
  const kind = (raw as { [INTERNAL_CHANNEL_KIND]?: unknown })[INTERNAL_CHANNEL_KIND];
  return typeof kind === "string" ? kind : undefined;
}
