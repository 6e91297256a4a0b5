import {
  type CoordisObserver,
  combineObservers,
  type RedisClient,
  RedisUnavailableError,
  randomToken,
} from "@coordis/core";
import { INTERNAL_CHANNEL_KIND, PubSub, type Unsubscribe } from "@coordis/pubsub";
import { isShortCircuit } from "./circuit-breaker.js";

/** One invalidation as it travels between replicas. */
export interface BusMessage {
  /** Publisher id (random per Cache instance). */
  readonly p: string;
  /** The publisher's sequence number for this namespace: 1, 2, 3... without holes. */
  readonly s: number;
  /** A key that changed (set, delete or fill). */
  readonly k?: string;
  /** A tag that was invalidated. */
  readonly t?: string;
  /** 1 = the whole namespace was cleared. */
  readonly c?: 1;
}

/** Why the bus told its owner to drop everything. */
export type GapReason = "disconnected" | "resubscribed" | "sequence-gap" | "overflow" | "unknown-publisher";

/** What the bus reports to its owner (the Cache). */
export interface BusListener {
  /** A message from another instance. */
  message(msg: BusMessage): void;
  /**
   * Messages may have been missed. `flush` = drop the whole L1 now; `false` (the subscriber is down) = stop reading
   * L1 until `health(true)`, which always follows a `gap("resubscribed", true)`.
   */
  gap(reason: GapReason, flush: boolean): void;
  /** Whether the subscription is live; L1 must not be read while it is not. */
  health(healthy: boolean): void;
}

const MAX_PUBLISHERS = 10_000;

/** The key kind of the invalidation channels: `<prefix>:cache-bus:<namespace>`. */
export const BUS_CHANNEL_KIND = "cache-bus";

/**
 * The invalidation channel of one cache namespace over @coordis/pubsub. Detects when this instance may have missed
 * messages and reports a gap: the subscriber connection was lost (reported by PubSub's observer event
 * `subscriber-disconnected`), subscriptions were restored (`resubscribed`), a subscription queue overflowed, or a
 * publisher's sequence number skipped (each instance numbers its own messages 1, 2, 3...; a message from a
 * publisher never seen before that does not start at 1 is a possible gap too).
 */
export class InvalidationBus {
  /** Random id of this publisher, carried in every message. */
  readonly id = randomToken(9);
  readonly #pubsub: PubSub;
  /**
   * Publishes only (it never subscribes, so it opens no connection and holds nothing to close): a change still in
   * flight when the cache is closed publishes its invalidation after the subscribing PubSub is closed.
   */
  readonly #publisher: PubSub;
  readonly #channel: string;
  readonly #listener: BusListener;
  #seq = 0;
  readonly #lastSeq = new Map<string, number>();
  #unsubscribe: Unsubscribe | undefined;
  #healthy = false;
  #closed = false;
  #retry: NodeJS.Timeout | undefined;

  constructor(
    redis: RedisClient,
    prefix: string,
    namespace: string,
    observer: CoordisObserver | undefined,
    listener: BusListener,
  ) {
    this.#listener = listener;
    // `<prefix>:cache-bus:<namespace>`: a channel kind of its own, out of reach of the channels and patterns an app's
    // PubSub names (`<prefix>:ps:...`), which may come from its users (a chat room named "cache.products" evicted this
    // namespace's L1 entries, or all of them, on every replica, and psubscribe("*") read every invalidated key).
    this.#channel = namespace;
    // PubSub reports a lost subscriber connection only through its observer, so we listen there too.
    const watch: CoordisObserver = {
      onEvent: (e) => {
        if (e.primitive === "pubsub" && e.type === "subscriber-disconnected") this.#lost("disconnected");
      },
    };
    const internal = { [INTERNAL_CHANNEL_KIND]: BUS_CHANNEL_KIND };
    this.#pubsub = new PubSub(redis, {
      prefix,
      observer: observer ? combineObservers(watch, observer) : watch,
      ...internal,
    });
    this.#publisher = new PubSub(redis, { prefix, ...(observer ? { observer } : {}), ...internal });
    this.#pubsub.on("resubscribed", (info) => {
      if (this.#closed) return;
      // Reported also when Redis refused our channel again (an ACL change took it away): still cut off from the
      // invalidations, so L1 stays unread until a retry that Redis accepts is reported (with our one channel).
      if (info.channels === 0) return;
      this.#listener.gap("resubscribed", true);
      this.#setHealthy(true);
    });
    this.#pubsub.on("overflow", () => this.#listener.gap("overflow", true));
  }

  /** Whether the subscription is confirmed and not known to be broken. */
  get isHealthy(): boolean {
    return this.#healthy;
  }

  /** Subscribes; retries in the background (every 1 s) until it succeeds or the bus is closed. */
  start(): Promise<void> {
    return this.#trySubscribe();
  }

  async #trySubscribe(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#unsubscribe = await this.#pubsub.subscribe<BusMessage>(this.#channel, (msg) => this.#receive(msg));
      if (this.#closed) {
        void this.#unsubscribe();
        return;
      }
      this.#setHealthy(true);
    } catch {
      if (!this.#closed) this.#retry = setTimeout(() => void this.#trySubscribe(), 1_000).unref();
    }
  }

  /**
   * Publishes one invalidation, also after {@link close}: a change made before the cache was closed (a set still
   * writing) must still reach the other replicas. A message that fails leaves a hole in our sequence: receivers drop
   * their L1 on our next message (until then, only their L1 TTL bounds it).
   * @throws what the PUBLISH failed with (RedisUnavailableError when Redis could not be reached in time)
   */
  async publish(body: { k?: string; t?: string; c?: 1 }): Promise<void> {
    this.#seq++;
    await this.#publisher.publish(this.#channel, { p: this.id, s: this.#seq, ...body });
  }

  /** Unsubscribes and closes the subscriber connection, within PubSub's close bound. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#healthy = false;
    await this.#pubsub.close();
  }

  #lost(reason: GapReason): void {
    if (this.#closed) return;
    this.#setHealthy(false);
    // From this moment invalidations may be missed, so L1 is dropped now, not only on resubscribe: otherwise the
    // degraded path (Redis unreachable, circuit open) could serve entries an invalidation had already replaced.
    // Entries loaded while disconnected are stored under the new epoch and stay usable.
    this.#listener.gap(reason, true);
  }

  #setHealthy(healthy: boolean): void {
    if (this.#healthy === healthy) return;
    this.#healthy = healthy;
    this.#listener.health(healthy);
  }

  #receive(raw: unknown): void {
    const msg = raw as BusMessage;
    if (msg === null || typeof msg !== "object" || typeof msg.p !== "string" || typeof msg.s !== "number") return;
    if (msg.p === this.id) return; // our own message: already applied locally
    const last = this.#lastSeq.get(msg.p);
    if (this.#lastSeq.size >= MAX_PUBLISHERS && last === undefined) this.#lastSeq.clear();
    this.#lastSeq.set(msg.p, Math.max(last ?? 0, msg.s));
    if (last === undefined ? msg.s !== 1 : msg.s !== last + 1) {
      // A hole: something from this publisher never arrived (or arrived before we knew it). Drop everything; the
      // message itself is covered by the drop.
      if (last === undefined || msg.s > last + 1) {
        this.#listener.gap(last === undefined ? "unknown-publisher" : "sequence-gap", true);
        return;
      }
    }
    this.#listener.message(msg);
  }
}

/** What a change announces: the key, the tag, or `c: 1` for a clear. */
export type BusMessageBody = { k?: string; t?: string; c?: 1 };

/**
 * Runs a change, then publishes its invalidation on `bus`, also when the change failed (a write that timed out may
 * still be applied), except when the open circuit breaker refused it before any of its writes was sent (`partial()`
 * false when it failed): it did not reach Redis, so there is nothing to announce, and the announcement would wait for
 * an unreachable Redis. A change of many writes (a clear) refused after some of them were sent has begun: announced.
 * The change's error wins; when only the publish fails, the call
 * throws what it failed with: the other replicas were not told, so the change is not confirmed (they may serve the
 * old value until their L1 TTL). After a failed change, `fence` (a Cluster's: the change and the channel live on
 * different masters, so a change held up on its way may run after the message, and replicas may read the old value
 * in between) resolves true once the change's master answered a later call on its connection: it is announced again.
 */
export async function announced<T>(
  bus: InvalidationBus | undefined,
  body: BusMessageBody,
  change: () => Promise<T>,
  partial: () => boolean,
  fence?: () => Promise<boolean>,
): Promise<T> {
  let result: T;
  try {
    result = await change();
  } catch (err) {
    if (isShortCircuit(err) && !partial()) throw err;
    await bus?.publish(body).catch(() => {});
    // (A change Redis answered, even with an error, cannot run later.)
    if (
      err instanceof RedisUnavailableError &&
      bus !== undefined &&
      fence !== undefined &&
      (await fence().catch(() => false))
    ) {
      await bus.publish(body).catch(() => {});
    }
    throw err;
  }
  await bus?.publish(body);
  return result;
}
