import { EventEmitter } from "node:events";
import {
  CoordisError,
  type CoordisObserver,
  corkUntilTickEnd,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  isCluster,
  notifyEvent,
  notifyOperation,
  type RedisClient,
  toCoordisError,
  validate,
  validatePrefix,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { validateChannel, validatePattern } from "./channel-names.js";
import { type Codec, jsonCodec } from "./codec.js";

/** Default bound of each subscription's queue of messages waiting for its handler. */
export const DEFAULT_QUEUE_LIMIT = 1_000;
/** Default largest encoded message, in bytes (1 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** Options of {@link PubSub}. */
export interface PubSubOptions {
  /** Encodes and decodes messages; default {@link jsonCodec}. */
  codec?: Codec;
  /** Key prefix; channels are `<prefix>:ps:<channel>`. Default `"coordis"`. */
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
}

/** Facts about one received message, passed to handlers as the second argument. */
export interface MessageMeta {
  /** The channel (without the prefix) the message was published on. */
  readonly channel: string;
  /** The pattern (without the prefix) that matched, for pattern subscriptions. */
  readonly pattern?: string;
}

/** Receives messages. May be async: the next message of the same subscription waits until it settles. */
export type MessageHandler<T = unknown> = (message: T, meta: MessageMeta) => void | Promise<void>;

/** Stops a subscription (idempotent). Resolves once Redis confirmed, when it was the channel's last handler. */
/** A glob character: `subscribe()` treats such a name as a pattern. */
const GLOB = /[*?[]/;

export type Unsubscribe = () => Promise<void>;

/** Payload of the `resubscribed` event. */
export interface ResubscribedInfo {
  /** Channels and patterns subscribed again. */
  readonly channels: number;
  readonly patterns: number;
  /** Time between losing the connection and the confirmed resubscription, ms. */
  readonly downtimeMs: number;
}

/** Payload of the `overflow` event: one message was dropped because a subscription's queue was full. */
export interface OverflowInfo {
  readonly channel: string;
  readonly pattern?: string;
  /** Messages this subscription has dropped so far. */
  readonly dropped: number;
  readonly queueLimit: number;
}

/** Payload of the `handler-error` event. */
export interface HandlerErrorInfo {
  readonly channel: string;
  readonly pattern?: string;
  /** `"decode"`: the codec could not read the message; `"handler"`: the handler threw or rejected. */
  readonly stage: "decode" | "handler";
  readonly error: Error;
}

/**
 * Events a {@link PubSub} emits. None of them is `error`, so an unlistened event never throws; an exception thrown by
 * a listener is dropped (delivery and the connection are unaffected).
 */
export interface PubSubEvents {
  /** The subscriber connection was lost and every subscription is active again: messages may have been missed. */
  resubscribed: [info: ResubscribedInfo];
  /** A message was dropped because a subscription's queue was full. */
  overflow: [info: OverflowInfo];
  /** A handler threw, or a message could not be decoded. Other handlers and messages are unaffected. */
  "handler-error": [info: HandlerErrorInfo];
}

/** Counters of a {@link PubSub}, for metrics and tests. */
export interface PubSubStats {
  readonly subscriptions: number;
  readonly channels: number;
  readonly patterns: number;
  /** Messages waiting in subscription queues. */
  readonly queued: number;
  /** Messages dropped on overflow since the PubSub was created. */
  readonly dropped: number;
  /** Handler and decode errors since the PubSub was created. */
  readonly handlerErrors: number;
  /** Confirmed resubscriptions after connection losses. */
  readonly resubscriptions: number;
}

type Kind = "channel" | "pattern";

interface Pending {
  readonly channel: string;
  readonly data: Buffer;
}

class Subscription {
  readonly queue: Pending[] = [];
  active = true;
  running = false;
  dropped = 0;

  constructor(
    readonly kind: Kind,
    readonly name: string,
    readonly handler: MessageHandler<never>,
  ) {}
}

interface ChannelEntry {
  readonly subs: Set<Subscription>;
  readonly ready: Promise<unknown>;
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Typed Redis pub/sub over one subscriber connection per instance, multiplexing any number of handlers.
 *
 * - Delivery is **at most once**, like Redis pub/sub itself: a message published while the subscriber is
 *   disconnected is lost. After a reconnect every subscription is restored and `resubscribed` is emitted, so you
 *   know when messages may have been missed (use `@coordis/eventlog` when you need every message).
 * - Each subscription has its own bounded queue and runs its handler one message at a time. A throwing handler
 *   (reported as `handler-error`) or a slow one (its queue overflows: `overflow`, counted) affects neither other
 *   handlers nor the connection.
 * - On Redis Cluster, plain channels use sharded pub/sub (SPUBLISH/SSUBSCRIBE) unless `sharded: false`.
 *
 * @example
 * const bus = new PubSub(redis);
 * const off = await bus.subscribe<{ id: string }>("orders", (msg) => console.log(msg.id));
 * await bus.publish("orders", { id: "o-1" });
 * await off();
 * await bus.close();
 */
export class PubSub extends EventEmitter<PubSubEvents> {
  readonly prefix: string;
  private readonly redis: RedisClient;
  private readonly codec: Codec;
  private readonly observer: CoordisObserver | undefined;
  private readonly queueLimit: number;
  private readonly maxMessageBytes: number;
  private readonly sharded: boolean;
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly patterns = new Map<string, ChannelEntry>();
  private subscriber: Redis | Cluster | undefined;
  private closed = false;
  private lostAt: number | undefined;
  private counters = { dropped: 0, handlerErrors: 0, resubscriptions: 0 };

  /**
   * @param redis the client to publish with; subscriptions use one duplicate of it, opened on the first subscribe
   * @throws InvalidArgumentError for an invalid option
   */
  constructor(redis: RedisClient, options: PubSubOptions = {}) {
    super();
    const opts = validate.options<PubSubOptions>("options", options);
    validate.redisClient("redis", redis);
    if (typeof (redis as Redis).duplicate !== "function") {
      throw new InvalidArgumentError("redis", "expected an ioredis Redis or Cluster client");
    }
    this.redis = redis;
    this.prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
    const codec = opts.codec === undefined ? jsonCodec : opts.codec;
    if (codec === null || typeof codec !== "object")
      throw new InvalidArgumentError("options.codec", "expected a codec");
    validate.func("options.codec.encode", codec.encode);
    validate.func("options.codec.decode", codec.decode);
    this.codec = codec;
    this.observer = validate.observer("options.observer", opts.observer);
    this.queueLimit =
      opts.queueLimit === undefined
        ? DEFAULT_QUEUE_LIMIT
        : validate.positiveInteger("options.queueLimit", opts.queueLimit, 1_000_000);
    this.maxMessageBytes =
      opts.maxMessageBytes === undefined
        ? DEFAULT_MAX_MESSAGE_BYTES
        : validate.positiveInteger("options.maxMessageBytes", opts.maxMessageBytes, 512 * 1024 * 1024);
    // Validated on every topology, even though only a Cluster client uses it.
    const sharded = opts.sharded === undefined ? true : validate.boolean("options.sharded", opts.sharded);
    this.sharded = isCluster(redis) && sharded;
  }

  /** True when this instance uses sharded pub/sub (a Cluster client with `sharded` not disabled). */
  get isSharded(): boolean {
    return this.sharded;
  }

  /** The Redis channel name behind `channel`: `<prefix>:ps:<channel>`. */
  redisChannel(channel: string): string {
    return `${this.prefix}:ps:${validateChannel(channel)}`;
  }

  /**
   * Publishes one message.
   * @returns how many subscribers received it (on a sharded cluster: on the channel's shard; with classic
   *   PUBLISH on a cluster: on the node that received the command). Zero does not mean an error.
   * @throws InvalidArgumentError for a bad channel name or a message the codec cannot encode or that is larger
   *   than `maxMessageBytes` (nothing is sent); RedisUnavailableError when Redis cannot be reached; CoordisError
   *   `ERR_PUBSUB_CLOSED` after {@link close}
   */
  async publish(channel: string, message: unknown): Promise<number> {
    this.assertOpen();
    const name = validateChannel(channel);
    let data: string | Buffer;
    try {
      data = this.codec.encode(message);
    } catch (err) {
      throw new InvalidArgumentError("message", `cannot be encoded: ${errorOf(err).message}`);
    }
    if (typeof data !== "string" && !Buffer.isBuffer(data)) {
      throw new InvalidArgumentError("message", "the codec's encode() must return a string or a Buffer");
    }
    const bytes = typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.length;
    if (bytes > this.maxMessageBytes) {
      throw new InvalidArgumentError(
        "message",
        `encodes to ${bytes} bytes, more than maxMessageBytes ${this.maxMessageBytes}`,
      );
    }
    const key = `${this.prefix}:ps:${name}`;
    const started = performance.now();
    try {
      // Publishes of one tick leave in one system call (see corkUntilTickEnd in @coordis/core).
      corkUntilTickEnd(this.redis);
      const receivers = this.sharded
        ? ((await (this.redis as Cluster).spublish(key, data)) as number)
        : await this.redis.publish(key, data);
      notifyOperation(this.observer, {
        primitive: "pubsub",
        op: "publish",
        outcome: "ok",
        durationMs: performance.now() - started,
        name,
      });
      return receivers;
    } catch (err) {
      const error = toCoordisError(err);
      notifyOperation(this.observer, {
        primitive: "pubsub",
        op: "publish",
        outcome: "error",
        durationMs: performance.now() - started,
        name,
        error,
      });
      throw error;
    }
  }

  /**
   * Subscribes `handler` to one channel, or — when the name holds a glob character (`*`, `?`, `[`) — to every channel
   * matching that pattern, exactly as {@link PubSub.psubscribe} (the API contract's `subscribe(channel | pattern)`).
   * There is no ambiguity: a channel name may never contain those characters. Several handlers may share a channel:
   * Redis sees one subscription. Resolves once Redis confirmed the subscription, so messages published afterwards
   * arrive.
   * @returns a function that removes this handler
   * @throws InvalidArgumentError for a bad channel name, pattern or handler, or a pattern on a sharded cluster
   *   instance; RedisUnavailableError when the subscription could not be confirmed in time (the handler is not
   *   registered); CoordisError `ERR_PUBSUB_CLOSED`
   */
  async subscribe<T = unknown>(channel: string, handler: MessageHandler<T>): Promise<Unsubscribe> {
    this.assertOpen();
    if (typeof channel === "string" && GLOB.test(channel)) return this.addPattern(channel, handler, "channel");
    const name = validateChannel(channel);
    validate.func("handler", handler);
    return this.add("channel", name, handler as MessageHandler<never>);
  }

  /**
   * Subscribes `handler` to every channel matching a glob pattern (PSUBSCRIBE syntax: `*`, `?`, `[abc]`), e.g.
   * `"orders.*"`. The prefix is added in front, so patterns only ever match this prefix's channels. A pattern
   * without glob characters matches only the channel of that name.
   *
   * On Redis Cluster patterns need classic (broadcast) pub/sub: create the PubSub with `sharded: false` on both
   * sides. Sharded messages are never delivered to pattern subscribers, so a sharded instance rejects this call.
   * @throws InvalidArgumentError for a bad pattern or handler, or on a sharded cluster instance
   */
  async psubscribe<T = unknown>(pattern: string, handler: MessageHandler<T>): Promise<Unsubscribe> {
    this.assertOpen();
    return this.addPattern(pattern, handler, "pattern");
  }

  private async addPattern<T>(pattern: unknown, handler: MessageHandler<T>, argument: string): Promise<Unsubscribe> {
    const name = validatePattern(pattern, argument);
    validate.func("handler", handler);
    if (this.sharded) {
      throw new InvalidArgumentError(
        argument,
        "pattern subscriptions do not see sharded messages on Redis Cluster; use new PubSub(cluster, { sharded: false })",
      );
    }
    return this.add("pattern", name, handler as MessageHandler<never>);
  }

  /** Current counters. */
  stats(): PubSubStats {
    let subscriptions = 0;
    let queued = 0;
    for (const map of [this.channels, this.patterns]) {
      for (const entry of map.values()) {
        subscriptions += entry.subs.size;
        for (const s of entry.subs) queued += s.queue.length;
      }
    }
    return {
      subscriptions,
      channels: this.channels.size,
      patterns: this.patterns.size,
      queued,
      ...this.counters,
    };
  }

  /**
   * Drops every subscription and queued message and closes the subscriber connection. Handlers already running
   * are not awaited. The publishing client is left open (it is yours). Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const map of [this.channels, this.patterns]) {
      for (const entry of map.values()) {
        for (const s of entry.subs) {
          s.active = false;
          s.queue.length = 0;
        }
      }
      map.clear();
    }
    const sub = this.subscriber;
    this.subscriber = undefined;
    sub?.disconnect();
  }

  private assertOpen(): void {
    if (this.closed) throw new CoordisError("ERR_PUBSUB_CLOSED", "this PubSub was closed");
  }

  private async add(kind: Kind, name: string, handler: MessageHandler<never>): Promise<Unsubscribe> {
    const map = kind === "channel" ? this.channels : this.patterns;
    const redisName = `${this.prefix}:ps:${name}`;
    const started = performance.now();
    let entry = map.get(redisName);
    if (entry === undefined) {
      entry = { subs: new Set(), ready: this.send(kind, "subscribe", redisName) };
      map.set(redisName, entry);
    }
    const sub = new Subscription(kind, name, handler);
    entry.subs.add(sub);
    const owner = entry;
    try {
      await owner.ready;
    } catch (err) {
      sub.active = false;
      owner.subs.delete(sub);
      if (owner.subs.size === 0 && map.get(redisName) === owner) map.delete(redisName);
      const error = toCoordisError(err);
      notifyOperation(this.observer, {
        primitive: "pubsub",
        op: "subscribe",
        outcome: "error",
        durationMs: performance.now() - started,
        name,
        error,
      });
      throw error;
    }
    notifyOperation(this.observer, {
      primitive: "pubsub",
      op: "subscribe",
      outcome: "ok",
      durationMs: performance.now() - started,
      name,
      attributes: { kind },
    });
    return async () => {
      if (!sub.active) return;
      sub.active = false;
      sub.queue.length = 0;
      owner.subs.delete(sub);
      if (owner.subs.size > 0 || map.get(redisName) !== owner) return;
      map.delete(redisName);
      if (this.closed) return;
      try {
        await this.send(kind, "unsubscribe", redisName);
      } catch {
        // The subscriber connection is down: after the reconnect only the channels still in the map are restored.
      }
    };
  }

  private send(kind: Kind, action: "subscribe" | "unsubscribe", redisName: string): Promise<unknown> {
    const conn = this.connection();
    if (kind === "pattern") return action === "subscribe" ? conn.psubscribe(redisName) : conn.punsubscribe(redisName);
    if (this.sharded) return action === "subscribe" ? conn.ssubscribe(redisName) : conn.sunsubscribe(redisName);
    return action === "subscribe" ? conn.subscribe(redisName) : conn.unsubscribe(redisName);
  }

  /** The subscriber connection, opened on first use. */
  private connection(): Redis | Cluster {
    if (this.subscriber !== undefined) return this.subscriber;
    let conn: Redis | Cluster;
    if (isCluster(this.redis)) {
      conn = this.redis.duplicate([], { shardedSubscribers: this.sharded });
      // ioredis restores cluster subscriptions itself; "-subscriber"/"-node" mark a loss, "subscribersReady"
      // (sharded) or "ready" (broadcast) the moment they are back.
      const lost = () => this.markLost();
      conn.on("-subscriber", lost);
      conn.on("-node", lost);
      conn.on("close", lost);
      conn.on("subscribersReady", () => this.restored());
      conn.on("ready", () => this.restored());
      conn.on("smessageBuffer", (channel: Buffer, message: Buffer) => this.dispatch(this.channels, channel, message));
    } else {
      // We resubscribe ourselves (autoResubscribe off) so that `resubscribed` fires only once Redis confirmed it.
      const standalone = this.redis.duplicate({ autoResubscribe: false });
      standalone.on("close", () => this.markLost());
      standalone.on("ready", () => {
        if (this.lostAt !== undefined) void this.resubscribe(standalone);
      });
      conn = standalone;
    }
    conn.on("error", (error: Error) => {
      notifyEvent(this.observer, { primitive: "pubsub", type: "connection-error", error });
    });
    conn.on("messageBuffer", (channel: Buffer, message: Buffer) => this.dispatch(this.channels, channel, message));
    conn.on("pmessageBuffer", (pattern: Buffer, channel: Buffer, message: Buffer) =>
      this.dispatch(this.patterns, pattern, message, channel),
    );
    this.subscriber = conn;
    return conn;
  }

  private markLost(): void {
    if (this.closed || this.lostAt !== undefined) return;
    // Only a loss after subscriptions existed matters; the very first connect is not a reconnect.
    if (this.channels.size === 0 && this.patterns.size === 0) return;
    this.lostAt = Date.now();
    notifyEvent(this.observer, { primitive: "pubsub", type: "subscriber-disconnected" });
  }

  private async resubscribe(conn: Redis): Promise<void> {
    const channels = [...this.channels.keys()];
    const patterns = [...this.patterns.keys()];
    try {
      await Promise.all([
        channels.length > 0 ? conn.subscribe(...channels) : undefined,
        patterns.length > 0 ? conn.psubscribe(...patterns) : undefined,
      ]);
    } catch (error) {
      notifyEvent(this.observer, { primitive: "pubsub", type: "resubscribe-failed", error: errorOf(error) });
      // The next "ready" (after the connection drops again) or a retry while still connected tries again.
      if (!this.closed && conn.status === "ready") setTimeout(() => void this.resubscribe(conn), 500).unref();
      return;
    }
    this.restored(channels.length, patterns.length);
  }

  private restored(channels = this.channels.size, patterns = this.patterns.size): void {
    if (this.closed || this.lostAt === undefined) return;
    const downtimeMs = Date.now() - this.lostAt;
    this.lostAt = undefined;
    this.counters.resubscriptions++;
    const info: ResubscribedInfo = { channels, patterns, downtimeMs };
    notifyEvent(this.observer, {
      primitive: "pubsub",
      type: "resubscribed",
      attributes: { channels, patterns, downtimeMs },
    });
    // Called from a promise nobody awaits (resubscribe) or from an ioredis event: a throwing listener must neither
    // become an unhandled rejection nor throw into ioredis.
    try {
      this.emit("resubscribed", info);
    } catch {
      // a throwing listener is the listener's problem
    }
  }

  private dispatch(map: Map<string, ChannelEntry>, key: Buffer, data: Buffer, channel?: Buffer): void {
    const entry = map.get(key.toString("utf8"));
    if (entry === undefined) return;
    const skip = this.prefix.length + 4; // "<prefix>:ps:"
    const channelName = (channel ?? key).toString("utf8").slice(skip);
    for (const sub of entry.subs) this.enqueue(sub, { channel: channelName, data });
  }

  private enqueue(sub: Subscription, item: Pending): void {
    if (!sub.active) return;
    if (sub.queue.length >= this.queueLimit) {
      sub.dropped++;
      this.counters.dropped++;
      const info: OverflowInfo = {
        channel: item.channel,
        ...(sub.kind === "pattern" ? { pattern: sub.name } : {}),
        dropped: sub.dropped,
        queueLimit: this.queueLimit,
      };
      notifyEvent(this.observer, {
        primitive: "pubsub",
        type: "overflow",
        name: item.channel,
        attributes: { kind: sub.kind, queueLimit: this.queueLimit },
      });
      try {
        this.emit("overflow", info);
      } catch {
        // a throwing listener must not break delivery to the other subscriptions
      }
      return;
    }
    sub.queue.push(item);
    if (!sub.running) void this.drain(sub);
  }

  /** Runs one subscription's handler over its queue, one message at a time. Never rejects. */
  private async drain(sub: Subscription): Promise<void> {
    sub.running = true;
    try {
      for (let item = sub.queue.shift(); item !== undefined && sub.active; item = sub.queue.shift()) {
        const meta: MessageMeta =
          sub.kind === "pattern" ? { channel: item.channel, pattern: sub.name } : { channel: item.channel };
        let message: unknown;
        try {
          message = this.codec.decode(item.data);
        } catch (err) {
          this.handlerError(sub, meta, "decode", err);
          continue;
        }
        try {
          await sub.handler(message as never, meta);
        } catch (err) {
          this.handlerError(sub, meta, "handler", err);
        }
      }
    } finally {
      sub.running = false;
    }
  }

  private handlerError(sub: Subscription, meta: MessageMeta, stage: "decode" | "handler", err: unknown): void {
    this.counters.handlerErrors++;
    const error = errorOf(err);
    notifyEvent(this.observer, {
      primitive: "pubsub",
      type: "handler-error",
      name: meta.channel,
      attributes: { kind: sub.kind, stage },
      error,
    });
    // Emitting must not throw back into the drain loop even if a listener throws.
    try {
      this.emit("handler-error", { ...meta, stage, error });
    } catch {
      // a throwing listener is the listener's problem
    }
  }
}
