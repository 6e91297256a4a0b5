import {
  type CoordisObserver,
  commandTimeoutOf,
  DEFAULT_DISCONNECT_TIMEOUT_MS,
  disconnectWithin,
  duplicateOwn,
  errorOf,
  isCluster,
  notifyEvent,
  ownConnectionOptions,
  type RedisClient,
  ScriptError,
  slotOf,
  toCoordisError,
} from "@coordis/core";
import type { Cluster, Redis } from "ioredis";
import type { ResubscribedInfo } from "./events.js";
import {
  bytesRead,
  onShardMoved,
  pingUntimed,
  shardOfChannelsDown,
  shardSubscriberFailed,
  shardSubscribers,
} from "./ioredis-internals.js";
import type { Kind, Subscriptions } from "./subscriptions.js";

/** Longest time `PubSub.close()` waits for the subscriber connection to close before destroying it, ms. */
export const CLOSE_TIMEOUT_MS = DEFAULT_DISCONNECT_TIMEOUT_MS;

/**
 * Default interval of the subscriber connections' heartbeat (standalone, Sentinel, a Cluster's broadcast subscriber
 * and each shard's subscriber), ms; the `heartbeatMs` option sets it per PubSub. A PING is sent on each every
 * interval, and when one is still unanswered at the next, the connection is taken for dead and replaced (then
 * resubscribed). A subscriber only receives, so without it a connection the network dropped silently (no FIN, no RST:
 * a NAT or load balancer that expired the flow, a host gone) would never be noticed. Such a loss is detected within
 * two intervals.
 */
export const HEARTBEAT_INTERVAL_MS = 5_000;

/** Pause before resubscribing again when a resubscription failed on a live connection, ms. */
const RESUBSCRIBE_RETRY_MS = 500;
/** Longest pause between two tries of a channel Redis refused on resubscription, ms. */
export const REFUSED_RETRY_MAX_MS = 30_000;

/** A channel or pattern Redis refused on resubscription, with its reply. */
interface Refused {
  readonly kind: Kind;
  readonly name: string;
  readonly error: Error;
}

/** Whether `err` is Redis' refusal of the command (an error reply such as NOPERM), not a lost or slow connection. */
function refusedByRedis(err: unknown): boolean {
  return toCoordisError(err) instanceof ScriptError;
}

/**
 * The one subscriber connection of a PubSub: a duplicate of the user's client, opened on first use. It tells a
 * loss (`subscriber-disconnected`) from the first connect, restores every subscription after a reconnect and reports
 * `resubscribed` only once Redis confirmed it. Received messages go to {@link Subscriptions.dispatch}.
 */
export class SubscriberConnection {
  readonly #redis: RedisClient;
  readonly #sharded: boolean;
  readonly #subs: Subscriptions;
  readonly #observer: CoordisObserver | undefined;
  readonly #onRestored: (info: ResubscribedInfo) => void;
  /** Heartbeat interval, ms (see {@link HEARTBEAT_INTERVAL_MS}). */
  readonly #heartbeatMs: number;
  #conn: Redis | Cluster | undefined;
  #lostAt: number | undefined;
  #retry: NodeJS.Timeout | undefined;
  /** The next try of the channels Redis refused on resubscription. */
  #refusedRetry: NodeJS.Timeout | undefined;
  /** The ioredis broadcast subscriber connection followed on a Cluster (see #followClusterSubscriber). */
  #followed: Redis | undefined;
  #closed = false;
  /** The subscriber connection was ready once: only a loss after that is a loss (not a first connect that failed). */
  #connectedOnce = false;
  #heartbeat: NodeJS.Timeout | undefined;
  /**
   * Connections whose heartbeat PING is still unanswered (one per shard on a sharded Cluster), with the bytes their
   * socket had read when it was sent, or when the last beat found it still out.
   */
  readonly #pingOut = new WeakMap<Redis, number>();
  /** Names (`<kind>\n<name>`) Redis refused on the last resubscription and has not granted since. */
  readonly #refused = new Set<string>();

  constructor(
    redis: RedisClient,
    sharded: boolean,
    subs: Subscriptions,
    observer: CoordisObserver | undefined,
    onRestored: (info: ResubscribedInfo) => void,
    heartbeatMs: number,
  ) {
    this.#redis = redis;
    this.#heartbeatMs = heartbeatMs;
    this.#sharded = sharded;
    this.#subs = subs;
    this.#observer = observer;
    this.#onRestored = onRestored;
  }

  /** Sends one (un)subscribe of `kind` for the Redis channel or pattern `redisName`. */
  send(kind: Kind, action: "subscribe" | "unsubscribe", redisName: string): Promise<unknown> {
    const conn = this.#connection();
    if (kind === "pattern") return action === "subscribe" ? conn.psubscribe(redisName) : conn.punsubscribe(redisName);
    if (this.#sharded) return action === "subscribe" ? conn.ssubscribe(redisName) : conn.sunsubscribe(redisName);
    return action === "subscribe" ? conn.subscribe(redisName) : conn.unsubscribe(redisName);
  }

  /** Whether Redis may not hold the subscribed `redisName` now: the connection is lost, or Redis refused it on restoring. */
  unconfirmed(kind: Kind, redisName: string): boolean {
    return this.#lostAt !== undefined || this.#refused.has(`${kind}\n${redisName}`);
  }

  /**
   * Closes the connection: resolves once it has ended, at the latest after {@link CLOSE_TIMEOUT_MS} (Redis
   * unreachable, or ioredis waiting to reconnect), when what is left of it is destroyed. Nothing of it (socket,
   * timer) remains afterwards.
   */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#refusedRetry);
    clearInterval(this.#heartbeat);
    const conn = this.#conn;
    this.#conn = undefined;
    return conn === undefined ? Promise.resolve() : disconnectWithin(conn, CLOSE_TIMEOUT_MS);
  }

  /** The subscriber connection, opened on first use. */
  #connection(): Redis | Cluster {
    if (this.#conn !== undefined) return this.#conn;
    let conn: Redis | Cluster;
    if (isCluster(this.#redis)) {
      const cluster = duplicateOwn(this.#redis, {}, { shardedSubscribers: this.#sharded });
      if (this.#sharded) {
        // ioredis restores sharded subscriptions itself; "-subscriber", and "-node" for the connection of a shard
        // subscriber, mark a loss, "subscribersReady" the moment they are back.
        const lost = () => this.#markLost();
        // "-subscriber" and "-node" also come for a node that holds none of our channels (never did, or all of them
        // were left): no loss then, and no "subscribersReady" need follow. Only a channel whose shard subscriber is
        // not ready lost anything.
        const shardLost = () => {
          if (shardOfChannelsDown(cluster, this.#subs.channels.keys(), slotOf)) lost();
        };
        cluster.on("-subscriber", shardLost);
        // "-node" also comes for every node that leaves the connection pool: only a shard subscriber's counts.
        cluster.on("-node", (node: unknown) => {
          if (shardSubscribers(cluster).some((shard) => shard === node)) shardLost();
        });
        cluster.on("close", lost);
        // A shard told its subscribers that the slot of a channel moved (SUNSUBSCRIBE push, on a slot migration):
        // messages published until ioredis has subscribed on the new owner are lost. "subscribersReady" follows.
        onShardMoved(cluster, lost);
        // After each try at its topology, also one whose connection to a shard's master failed (that master down,
        // tried again moments later): nothing is restored then.
        cluster.on("subscribersReady", () => {
          if (!shardSubscriberFailed(cluster)) this.#restored();
        });
        cluster.on("ready", () => {
          this.#connectedOnce = true;
          this.#restored();
        });
        cluster.on("smessageBuffer", (channel: Buffer, message: Buffer) =>
          this.#subs.dispatch("channel", channel, message),
        );
        this.#heartbeat = setInterval(() => {
          for (const shard of shardSubscribers(cluster)) this.#beat(shard);
        }, this.#heartbeatMs).unref();
      } else {
        // Broadcast: ioredis keeps one subscriber connection to a node of its choice and, when it ends, opens one to
        // another node and subscribes there again, telling nobody. We follow that connection: its end is a loss, and
        // on its successor we subscribe everything again ourselves, so `resubscribed` follows Redis' confirmation.
        const follow = () => this.#followClusterSubscriber(cluster);
        cluster.on("ready", () => {
          this.#connectedOnce = true;
          follow();
        });
        cluster.on("+node", follow);
        this.#heartbeat = setInterval(() => {
          if (this.#followed !== undefined) this.#beat(this.#followed);
        }, this.#heartbeatMs).unref();
      }
      conn = cluster;
    } else {
      // We resubscribe ourselves (autoResubscribe off) so that `resubscribed` fires only once Redis confirmed it.
      const standalone = duplicateOwn(this.#redis, { autoResubscribe: false });
      standalone.on("close", () => {
        this.#pingOut.delete(standalone);
        this.#markLost();
      });
      standalone.on("ready", () => {
        this.#connectedOnce = true;
        this.#pingOut.delete(standalone);
        if (this.#lostAt !== undefined) void this.#resubscribe(standalone);
      });
      this.#heartbeat = setInterval(() => this.#beat(standalone), this.#heartbeatMs).unref();
      conn = standalone;
    }
    conn.on("error", (error: Error) => {
      notifyEvent(this.#observer, { primitive: "pubsub", type: "connection-error", error });
    });
    conn.on("messageBuffer", (channel: Buffer, message: Buffer) => this.#subs.dispatch("channel", channel, message));
    conn.on("pmessageBuffer", (pattern: Buffer, channel: Buffer, message: Buffer) =>
      this.#subs.dispatch("pattern", pattern, message, channel),
    );
    this.#conn = conn;
    return conn;
  }

  /**
   * Watches ioredis' current broadcast subscriber connection of `cluster` (internal: `cluster.subscriber`, a
   * ClusterSubscriber, in ioredis 5 and 6; nothing is watched when it is absent). When it ends the loss is marked
   * and its successor, if ioredis has opened one yet, is followed; during a loss every subscription is sent again on
   * the followed connection.
   */
  #followClusterSubscriber(cluster: Cluster): void {
    if (this.#closed) return;
    const holder = (cluster as unknown as { subscriber?: { getInstance?: () => Redis | null } }).subscriber;
    const instance = typeof holder?.getInstance === "function" ? holder.getInstance() : null;
    if (instance == null || instance === this.#followed) return;
    // ioredis opens this connection with options of its own, without the client's command timeout (a subscribe would
    // wait for as long as the node is unresponsive) or Coordis' close grace: they are set here (read at each use).
    const timeout = commandTimeoutOf(this.#redis);
    if (timeout !== undefined && instance.options.commandTimeout === undefined)
      instance.options.commandTimeout = timeout;
    const connector = (instance as unknown as { connector?: { disconnectTimeout?: number } }).connector;
    if (connector !== undefined) connector.disconnectTimeout = ownConnectionOptions().disconnectTimeout;
    this.#followed = instance;
    this.#pingOut.delete(instance);
    // ioredis replaces an ended subscriber in its own "end" listener, registered before this one.
    instance.once("end", () => {
      this.#markLost();
      this.#followClusterSubscriber(cluster);
    });
    if (this.#lostAt !== undefined) void this.#resubscribe(instance);
  }

  /**
   * One heartbeat: sends a PING, or judges the previous one when it is still unanswered. A connection that read
   * anything since is alive: its PONG waits behind messages this process has not parsed yet (a handler slower than
   * the messages arrive), and dropping it would lose them. One that read nothing is judged once more after the I/O
   * already arrived was read (an event loop that was just blocked runs its timers first), then replaced.
   */
  #beat(conn: Redis): void {
    if (this.#closed || conn.status !== "ready" || this.#subs.empty) return;
    const read = this.#pingOut.get(conn);
    if (read !== undefined) {
      if (!this.#readSince(conn, read)) setImmediate(() => this.#judge(conn, read));
      return;
    }
    this.#pingOut.set(conn, bytesRead(conn));
    pingUntimed(conn).then(
      () => {
        this.#pingOut.delete(conn);
      },
      () => {
        // Lost with its connection ("close" and "ready" clear #pingOut for a new one).
      },
    );
  }

  /** Whether `conn` read anything since it had read `read` bytes; if so, its PING is judged from now on. */
  #readSince(conn: Redis, read: number): boolean {
    const now = bytesRead(conn);
    if (now === read) return false;
    this.#pingOut.set(conn, now);
    return true;
  }

  /** Replaces `conn` unless its PING was answered, or it read anything, since the beat found it silent. */
  #judge(conn: Redis, read: number): void {
    if (this.#closed || conn.status !== "ready" || this.#pingOut.get(conn) !== read || this.#readSince(conn, read)) {
      return;
    }
    this.#pingOut.delete(conn);
    notifyEvent(this.#observer, {
      primitive: "pubsub",
      type: "connection-error",
      error: new Error(`subscriber connection silent for ${this.#heartbeatMs} ms (PING unanswered); reconnecting`),
    });
    // Destroys the socket (a FIN would go nowhere): "close" marks the loss, then the client reconnects and the next
    // "ready" resubscribes (on a Cluster, ioredis opens a subscriber connection to a node, which is followed).
    const stream = (conn as unknown as { stream?: { destroy(): void } }).stream;
    if (stream === undefined) conn.disconnect(true);
    else stream.destroy();
  }

  #markLost(): void {
    if (this.#closed || this.#lostAt !== undefined) return;
    // Only a loss after subscriptions existed matters; the very first connect (or a failed one) is not a reconnect.
    if (this.#subs.empty || !this.#connectedOnce) return;
    this.#lostAt = performance.now();
    notifyEvent(this.#observer, { primitive: "pubsub", type: "subscriber-disconnected" });
  }

  async #resubscribe(conn: Redis): Promise<void> {
    clearTimeout(this.#refusedRetry); // everything is tried again here
    // The entries subscribed now: a channel left (or left and subscribed anew) while these are out is not one of them.
    const sent = { channel: new Map(this.#subs.channels), pattern: new Map(this.#subs.patterns) };
    const channels = [...sent.channel.keys()];
    const patterns = [...sent.pattern.keys()];
    /** Whether the entry of `name` is still the one this resubscription sent. */
    const current = (kind: Kind, name: string) => {
      const entry = this.#subs.map(kind).get(name);
      return entry !== undefined && entry === sent[kind].get(name);
    };
    let refused: Refused[] = [];
    try {
      await Promise.all([
        channels.length > 0 ? conn.subscribe(...channels) : undefined,
        patterns.length > 0 ? conn.psubscribe(...patterns) : undefined,
      ]);
    } catch (error) {
      // Closed meanwhile: the commands failed because close() ended the connection; nothing is reported after close.
      if (this.#closed) return;
      // Redis refuses the whole command when it refuses one name (an ACL change took a channel or pattern away, and
      // Redis ended the connection for it): one command per name then, so that the others come back.
      // Only the names still subscribed: one left while the refused command was out (its UNSUBSCRIBE sent behind it)
      // would be subscribed again by its own command, for no handler.
      const names: Array<[Kind, string]> = [
        ...channels.map((n): [Kind, string] => ["channel", n]),
        ...patterns.map((n): [Kind, string] => ["pattern", n]),
      ].filter(([kind, name]) => this.#subs.map(kind).has(name));
      const split = refusedByRedis(error) && conn.status === "ready" ? await this.#subscribeEach(conn, names) : null;
      if (split === null) {
        notifyEvent(this.#observer, { primitive: "pubsub", type: "resubscribe-failed", error: errorOf(error) });
        // The next "ready" (after the connection drops again) or a retry while still connected tries again.
        if (!this.#closed && conn.status === "ready") {
          this.#retry = setTimeout(() => void this.#resubscribe(conn), RESUBSCRIBE_RETRY_MS).unref();
        }
        return;
      }
      refused = split;
    }
    if (this.#closed) return;
    await this.#dropStale(conn);
    if (this.#closed) return;
    // A subscribe whose own SUBSCRIBE was lost with the previous connection (never answered, not sent again) is
    // confirmed now, instead of failing by its timeout while Redis has it.
    const out = new Set(refused.map((r) => `${r.kind}\n${r.name}`));
    this.#refused.clear();
    for (const name of out) this.#refused.add(name);
    // Only entries this resubscription sent: one made anew since (left and subscribed again meanwhile, its UNSUBSCRIBE
    // between) waits for its own SUBSCRIBE.
    const restored = { channel: 0, pattern: 0 };
    for (const [kind, list] of [["channel", channels] as const, ["pattern", patterns] as const]) {
      for (const name of list) {
        if (out.has(`${kind}\n${name}`) || !current(kind, name)) continue;
        this.#subs.map(kind).get(name)?.confirm();
        restored[kind]++;
      }
    }
    this.#restored(restored.channel, restored.pattern);
    if (refused.length > 0) this.#reportRefused(conn, refused, RESUBSCRIBE_RETRY_MS);
  }

  /**
   * Unsubscribes what `conn` holds and this PubSub no longer does. On a Cluster, ioredis subscribes its new broadcast
   * subscriber connection to what the last active one held, ahead of the resubscription: a channel whose UNSUBSCRIBE
   * went down with a lost connection would stay subscribed, for no handler. A failure is left to the next reconnect.
   * (ioredis' record of what a connection holds, `condition.subscriber`, is `false` while it holds nothing.)
   */
  async #dropStale(conn: Redis): Promise<void> {
    type Held = { channels?: (mode: string) => string[] } | false;
    const held = (conn as unknown as { condition?: { subscriber?: Held } | null }).condition?.subscriber;
    if (!held || typeof held.channels !== "function") return;
    const stale = (mode: string, kind: Kind) =>
      (held.channels?.(mode) ?? []).filter((n) => !this.#subs.map(kind).has(n));
    const [channels, patterns] = [stale("subscribe", "channel"), stale("psubscribe", "pattern")];
    const sent = [
      channels.length > 0 && conn.unsubscribe(...channels),
      patterns.length > 0 && conn.punsubscribe(...patterns),
    ];
    await Promise.all(sent).catch(() => {});
  }

  /**
   * Subscribes each name on its own: the names Redis refused (its reply), or null when another failure (the
   * connection lost, a timeout) left the outcome unknown.
   */
  async #subscribeEach(conn: Redis, names: ReadonlyArray<[Kind, string]>): Promise<Refused[] | null> {
    const results = await Promise.allSettled(
      names.map(([kind, name]) => (kind === "channel" ? conn.subscribe(name) : conn.psubscribe(name))),
    );
    const refused: Refused[] = [];
    for (const [i, r] of results.entries()) {
      if (r.status === "fulfilled") continue;
      if (!refusedByRedis(r.reason)) return null;
      const [kind, name] = names[i] as [Kind, string];
      refused.push({ kind, name, error: errorOf(r.reason) });
    }
    return refused;
  }

  /**
   * Reports each refused name (`resubscribe-failed` with its `kind` and Redis `channel` name) and tries them again
   * after `delayMs` (doubling up to {@link REFUSED_RETRY_MAX_MS}) while they are still subscribed locally; those Redis
   * then accepts are confirmed and reported as `resubscribed`.
   */
  #reportRefused(conn: Redis, refused: readonly Refused[], delayMs: number): void {
    for (const r of refused) {
      notifyEvent(this.#observer, {
        primitive: "pubsub",
        type: "resubscribe-failed",
        error: r.error,
        attributes: { kind: r.kind, channel: r.name },
      });
    }
    clearTimeout(this.#refusedRetry);
    this.#refusedRetry = setTimeout(async () => {
      if (this.#closed || conn !== this.#currentSubscriber() || conn.status !== "ready") return;
      const names = refused
        .filter((r) => this.#subs.map(r.kind).has(r.name))
        .map((r): [Kind, string] => [r.kind, r.name]);
      if (names.length === 0) return;
      const still = await this.#subscribeEach(conn, names);
      if (still === null || this.#closed) return; // a loss: the next "ready" resubscribes everything
      const left = new Set(still.map((r) => `${r.kind}\n${r.name}`));
      for (const r of refused) if (!left.has(`${r.kind}\n${r.name}`)) this.#refused.delete(`${r.kind}\n${r.name}`);
      let channels = 0;
      let patterns = 0;
      for (const [kind, name] of names) {
        if (left.has(`${kind}\n${name}`)) continue;
        this.#subs.map(kind).get(name)?.confirm();
        if (kind === "channel") channels++;
        else patterns++;
      }
      if (channels + patterns > 0) this.#onRestored({ channels, patterns, downtimeMs: 0 });
      if (still.length > 0) this.#reportRefused(conn, still, Math.min(delayMs * 2, REFUSED_RETRY_MAX_MS));
    }, delayMs).unref();
  }

  /** The connection subscriptions live on: the standalone connection, or the followed Cluster subscriber. */
  #currentSubscriber(): Redis | Cluster | undefined {
    return this.#followed ?? this.#conn;
  }

  #restored(channels = this.#subs.channels.size, patterns = this.#subs.patterns.size): void {
    if (this.#closed || this.#lostAt === undefined) return;
    const downtimeMs = Math.round(performance.now() - this.#lostAt);
    this.#lostAt = undefined;
    this.#onRestored({ channels, patterns, downtimeMs });
  }
}
