import { EventEmitter } from "node:events";
import {
  ClosedError,
  type CoordisObserver,
  corkUntilTickEnd,
  errorOf,
  InvalidArgumentError,
  instrument,
  isCluster,
  isThenable,
  notifyEvent,
  type RedisClient,
  reportOperation,
  toCoordisError,
  validate,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import { validateChannel, validatePattern } from "./channel-names.js";
import type { Codec } from "./codec.js";
import { SubscriberConnection } from "./connection.js";
import type {
  MessageHandler,
  MessageMeta,
  OverflowInfo,
  PubSubEvents,
  PubSubStats,
  ResubscribedInfo,
  Unsubscribe,
} from "./events.js";
import { type PubSubOptions, parsePubSubOptions } from "./options.js";
import { channelEntry, type Kind, Subscription, Subscriptions } from "./subscriptions.js";

/** A glob character: `subscribe()` treats such a name as a pattern. */
const GLOB = /[*?[]/;

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
  readonly #redis: RedisClient;
  readonly #head: string;
  readonly #codec: Codec;
  readonly #observer: CoordisObserver | undefined;
  readonly #queueLimit: number;
  readonly #maxMessageBytes: number;
  readonly #sharded: boolean;
  readonly #subs: Subscriptions;
  readonly #connection: SubscriberConnection;
  /**
   * The subscribes waiting for Redis, each rejected with the ClosedError at close. One entry per waiting call, removed
   * when it settles: a race against one promise that only settles at close would keep a reaction per subscribe() ever
   * made (about 300 bytes each) for the PubSub's whole life.
   */
  readonly #waiting = new Set<(err: ClosedError) => void>();
  #closing: Promise<void> | undefined;
  readonly #counters = { dropped: 0, handlerErrors: 0, resubscriptions: 0 };

  /**
   * @param redis the client to publish with; subscriptions use one duplicate of it, opened on the first subscribe
   * @throws InvalidArgumentError for an invalid or unknown option
   */
  constructor(redis: RedisClient, options: PubSubOptions = {}) {
    super();
    validate.options("options", options);
    validate.redisClient("redis", redis);
    if (typeof (redis as Redis).duplicate !== "function") {
      throw new InvalidArgumentError("redis", "expected an ioredis Redis or Cluster client");
    }
    const settings = parsePubSubOptions(options);
    this.#redis = redis;
    this.prefix = settings.prefix;
    this.#head = settings.head;
    this.#codec = settings.codec;
    this.#observer = settings.observer;
    this.#queueLimit = settings.queueLimit;
    this.#maxMessageBytes = settings.maxMessageBytes;
    this.#sharded = isCluster(redis) && settings.sharded;
    this.#subs = new Subscriptions(this.#head, this.#queueLimit, {
      decode: (data) => this.#codec.decode(data),
      overflow: (sub, channel) => this.#overflow(sub, channel),
      failed: (sub, meta, stage, err) => this.#handlerError(sub, meta, stage, err),
    });
    this.#connection = new SubscriberConnection(
      redis,
      this.#sharded,
      this.#subs,
      this.#observer,
      (info) => this.#restored(info),
      settings.heartbeatMs,
    );
  }

  /** True when this instance uses sharded pub/sub (a Cluster client with `sharded` not disabled). */
  get isSharded(): boolean {
    return this.#sharded;
  }

  /** The Redis channel name behind `channel`: `<prefix>:ps:<channel>`. */
  redisChannel(channel: string): string {
    return this.#head + validateChannel(channel);
  }

  /**
   * Publishes one message.
   * @returns how many subscribers received it (on a sharded cluster: on the channel's shard; with classic
   *   PUBLISH on a cluster: on the node that received the command). Zero does not mean an error.
   * @throws InvalidArgumentError for a bad channel name or a message the codec cannot encode or that is larger
   *   than `maxMessageBytes` (nothing is sent); RedisUnavailableError when Redis cannot be reached; ClosedError
   *   (`ERR_PUBSUB_CLOSED`) after {@link close}
   */
  async publish(channel: string, message: unknown): Promise<number> {
    this.#assertOpen();
    const name = validateChannel(channel);
    let data: string | Buffer;
    try {
      data = this.#codec.encode(message);
    } catch (err) {
      throw new InvalidArgumentError("message", `cannot be encoded: ${errorOf(err).message}`);
    }
    if (typeof data !== "string" && !Buffer.isBuffer(data)) {
      throw new InvalidArgumentError("message", "the codec's encode() must return a string or a Buffer");
    }
    const bytes = typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.length;
    if (bytes > this.#maxMessageBytes) {
      throw new InvalidArgumentError(
        "message",
        `encodes to ${bytes} bytes, more than maxMessageBytes ${this.#maxMessageBytes}`,
      );
    }
    const key = this.#head + name;
    return instrument(this.#observer, { primitive: "pubsub", op: "publish", name }, async () => {
      // Publishes of one tick leave in one system call (see corkUntilTickEnd in @coordis/core).
      corkUntilTickEnd(this.#redis);
      return this.#sharded
        ? ((await (this.#redis as Cluster).spublish(key, data)) as number)
        : await this.#redis.publish(key, data);
    });
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
   *   registered); ClosedError (`ERR_PUBSUB_CLOSED`), also when the PubSub is closed while Redis has not confirmed
   */
  async subscribe<T = unknown>(channel: string, handler: MessageHandler<T>): Promise<Unsubscribe> {
    this.#assertOpen();
    if (typeof channel === "string" && GLOB.test(channel)) return this.#addPattern(channel, handler, "channel");
    const name = validateChannel(channel);
    validate.func("handler", handler);
    return this.#add("channel", name, handler as MessageHandler<never>);
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
    this.#assertOpen();
    return this.#addPattern(pattern, handler, "pattern");
  }

  /** Current counters. */
  stats(): PubSubStats {
    return { ...this.#subs.counts(), ...this.#counters };
  }

  /**
   * Drops every subscription and queued message and closes the subscriber connection. Handlers already running
   * are not awaited; a subscribe still waiting for Redis rejects with ClosedError. Resolves once the subscriber
   * connection is closed: at once when Redis answers, and within 1 s ({@link CLOSE_TIMEOUT_MS}) when it does not
   * (an outage, a client waiting to reconnect), the connection then being destroyed. Nothing of this PubSub (socket,
   * timer) is left afterwards. The publishing client is left open (it is yours). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    const closed = this.#closedError();
    for (const reject of this.#waiting) reject(closed);
    this.#waiting.clear();
    this.#subs.clear();
    this.#closing = this.#connection.close();
    return this.#closing;
  }

  #closedError(): ClosedError {
    return new ClosedError("PubSub", { code: "ERR_PUBSUB_CLOSED" });
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw this.#closedError();
  }

  /** `ready`, or a rejection with the ClosedError when the PubSub closes first. */
  #untilClosed(ready: Promise<unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#waiting.add(reject);
      ready.then(resolve, reject).finally(() => this.#waiting.delete(reject));
    });
  }

  async #addPattern<T>(pattern: unknown, handler: MessageHandler<T>, argument: string): Promise<Unsubscribe> {
    const name = validatePattern(pattern, argument);
    validate.func("handler", handler);
    if (this.#sharded) {
      throw new InvalidArgumentError(
        argument,
        "pattern subscriptions do not see sharded messages on Redis Cluster; use new PubSub(cluster, { sharded: false })",
      );
    }
    return this.#add("pattern", name, handler as MessageHandler<never>);
  }

  async #add(kind: Kind, name: string, handler: MessageHandler<never>): Promise<Unsubscribe> {
    const map = this.#subs.map(kind);
    const redisName = this.#head + name;
    const started = performance.now();
    let entry = map.get(redisName);
    let confirmed: Promise<unknown>;
    if (entry === undefined) {
      entry = channelEntry(this.#connection.send(kind, "subscribe", redisName));
      map.set(redisName, entry);
      confirmed = entry.ready;
    } else {
      // Subscribed for other handlers, but while the connection is lost (or Redis refused the name when restoring it)
      // Redis confirms nothing: this handler waits for the answer to a SUBSCRIBE of its own, as the first one did.
      const unconfirmed = this.#connection.unconfirmed(kind, redisName);
      confirmed = unconfirmed ? this.#connection.send(kind, "subscribe", redisName) : entry.ready;
    }
    const sub = new Subscription(kind, name, handler);
    entry.subs.add(sub);
    const owner = entry;
    try {
      await this.#untilClosed(confirmed);
    } catch (err) {
      sub.active = false;
      owner.subs.delete(sub);
      if (owner.subs.size === 0 && map.get(redisName) === owner) {
        map.delete(redisName);
        // A SUBSCRIBE that timed out still waits in the client's offline queue and reaches Redis after the
        // reconnect: take it back (sent after it, in order), or Redis keeps a subscription nobody handles.
        if (this.#closing === undefined) this.#connection.send(kind, "unsubscribe", redisName).catch(() => {});
      }
      const error = toCoordisError(err);
      reportOperation(this.#observer, { primitive: "pubsub", op: "subscribe", name }, started, "error", error);
      throw error;
    }
    reportOperation(
      this.#observer,
      { primitive: "pubsub", op: "subscribe", name, attributes: { kind } },
      started,
      "ok",
    );
    const unsubscribe = async () => {
      if (!sub.active) return;
      sub.stop();
      owner.subs.delete(sub);
      if (owner.subs.size > 0 || map.get(redisName) !== owner) return;
      map.delete(redisName);
      if (this.#closing !== undefined) return;
      try {
        await this.#connection.send(kind, "unsubscribe", redisName);
      } catch {
        // The subscriber connection is down: after the reconnect only the channels still in the map are restored.
      }
    };
    // Called again, it answers the first call's promise: resolved once Redis confirmed, not at once.
    let unsubscribed: Promise<void> | undefined;
    return () => {
      unsubscribed ??= unsubscribe();
      return unsubscribed;
    };
  }

  /**
   * Emits `event` to each listener on its own: an exception a listener throws, or a rejection of the promise an async
   * listener returns, is dropped and the next listener still runs. EventEmitter's `emit` would stop at the first
   * throwing listener (the later ones never hear of the event) and leave a rejection unhandled, which ends a Node
   * process.
   */
  #emitEach<K extends keyof PubSubEvents>(event: K, ...args: PubSubEvents[K]): void {
    for (const listener of this.rawListeners(event) as Array<(...a: unknown[]) => unknown>) {
      try {
        const result = Reflect.apply(listener, this, args);
        if (isThenable(result)) result.then(undefined, () => {});
      } catch {
        // a throwing listener is the listener's problem
      }
    }
  }

  #restored(info: ResubscribedInfo): void {
    this.#counters.resubscriptions++;
    notifyEvent(this.#observer, {
      primitive: "pubsub",
      type: "resubscribed",
      attributes: { channels: info.channels, patterns: info.patterns, downtimeMs: info.downtimeMs },
    });
    // Called from a promise nobody awaits (resubscribe) or from an ioredis event.
    this.#emitEach("resubscribed", info);
  }

  #overflow(sub: Subscription, channel: string): void {
    this.#counters.dropped++;
    const info: OverflowInfo = {
      channel,
      ...(sub.kind === "pattern" ? { pattern: sub.name } : {}),
      dropped: sub.dropped,
      queueLimit: this.#queueLimit,
    };
    notifyEvent(this.#observer, {
      primitive: "pubsub",
      type: "overflow",
      name: channel,
      attributes: { kind: sub.kind, queueLimit: this.#queueLimit },
    });
    this.#emitEach("overflow", info);
  }

  #handlerError(sub: Subscription, meta: MessageMeta, stage: "decode" | "handler", err: unknown): void {
    this.#counters.handlerErrors++;
    const error = errorOf(err);
    notifyEvent(this.#observer, {
      primitive: "pubsub",
      type: "handler-error",
      name: meta.channel,
      attributes: { kind: sub.kind, stage },
      error,
    });
    // Called from the drain loop.
    this.#emitEach("handler-error", { ...meta, stage, error });
  }
}
