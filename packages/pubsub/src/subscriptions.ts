import { isThenable } from "@coordis/core";
import type { MessageHandler, MessageMeta } from "./events.js";

/** A plain channel or a glob pattern. */
export type Kind = "channel" | "pattern";

interface Pending {
  readonly channel: string;
  readonly data: Buffer;
}

/**
 * A first-in first-out queue whose `shift` costs O(1) at any length: Array#shift copies what is left of a long
 * array (a backlog of 100,000 messages took 8.5 s of CPU to drain, most of it moving the queue).
 */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Drop the consumed head once it is most of the array: every element is moved at most about once more.
    if (this.#head === this.#items.length) this.clear();
    else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** One handler's subscription: its own bounded queue, drained one message at a time. */
export class Subscription {
  readonly queue = new Fifo<Pending>();
  active = true;
  running = false;
  dropped = 0;

  constructor(
    readonly kind: Kind,
    readonly name: string,
    readonly handler: MessageHandler<never>,
  ) {}

  /** Stops delivery and forgets queued messages. */
  stop(): void {
    this.active = false;
    this.queue.clear();
  }
}

/** The handlers of one Redis channel (or pattern) and the promise of its SUBSCRIBE. */
export interface ChannelEntry {
  readonly subs: Set<Subscription>;
  /** Settles with the entry's own SUBSCRIBE, or resolves earlier when a resubscription confirmed the channel. */
  readonly ready: Promise<unknown>;
  /** Marks the channel confirmed by a resubscription (its own SUBSCRIBE may have been lost with a connection). */
  readonly confirm: () => void;
}

/** A new entry whose SUBSCRIBE is `subscribed`. */
export function channelEntry(subscribed: Promise<unknown>): ChannelEntry {
  let confirm!: () => void;
  const confirmed = new Promise<void>((resolve) => {
    confirm = resolve;
  });
  return { subs: new Set(), ready: Promise.race([subscribed, confirmed]), confirm };
}

/** What delivery reports to the PubSub that owns it. */
export interface DeliveryHooks {
  decode(data: Buffer): unknown;
  /** A message was dropped: `sub`'s queue was full. */
  overflow(sub: Subscription, channel: string): void;
  /** The codec or the handler threw. */
  failed(sub: Subscription, meta: MessageMeta, stage: "decode" | "handler", err: unknown): void;
}

/**
 * Every subscription of one PubSub, keyed by Redis channel (or pattern) name, and their delivery: a received
 * message is queued for each handler of its channel and each handler runs over its own queue one message at a time,
 * so a slow or throwing handler affects nobody else.
 */
export class Subscriptions {
  readonly channels = new Map<string, ChannelEntry>();
  readonly patterns = new Map<string, ChannelEntry>();
  readonly #headLength: number;
  readonly #queueLimit: number;
  readonly #hooks: DeliveryHooks;

  /** @param head `<prefix>:ps:`, cut from Redis channel names to give the channel names handlers see */
  constructor(head: string, queueLimit: number, hooks: DeliveryHooks) {
    this.#headLength = head.length;
    this.#queueLimit = queueLimit;
    this.#hooks = hooks;
  }

  map(kind: Kind): Map<string, ChannelEntry> {
    return kind === "channel" ? this.channels : this.patterns;
  }

  /** True when no channel or pattern is subscribed. */
  get empty(): boolean {
    return this.channels.size === 0 && this.patterns.size === 0;
  }

  /** Delivers one message received on Redis channel (or pattern) `key`; `channel` is the channel of a pmessage. */
  dispatch(kind: Kind, key: Buffer, data: Buffer, channel?: Buffer): void {
    const entry = this.map(kind).get(key.toString("utf8"));
    if (entry === undefined) return;
    const channelName = (channel ?? key).toString("utf8").slice(this.#headLength);
    // The handlers subscribed when the message came: a synchronous handler runs inside this call, and one that
    // subscribes (a Set visits what is added while it is iterated) would otherwise get this message again, forever.
    if (entry.subs.size === 1) {
      const only = entry.subs.values().next().value as Subscription;
      this.#enqueue(only, { channel: channelName, data });
      return;
    }
    for (const sub of [...entry.subs]) this.#enqueue(sub, { channel: channelName, data });
  }

  /** Subscriptions, channels, patterns and queued messages. */
  counts(): { subscriptions: number; channels: number; patterns: number; queued: number } {
    let subscriptions = 0;
    let queued = 0;
    for (const map of [this.channels, this.patterns]) {
      for (const entry of map.values()) {
        subscriptions += entry.subs.size;
        for (const s of entry.subs) queued += s.queue.length;
      }
    }
    return { subscriptions, channels: this.channels.size, patterns: this.patterns.size, queued };
  }

  /** Stops every subscription and forgets them all. */
  clear(): void {
    for (const map of [this.channels, this.patterns]) {
      for (const entry of map.values()) for (const s of entry.subs) s.stop();
      map.clear();
    }
  }

  #enqueue(sub: Subscription, item: Pending): void {
    if (!sub.active) return;
    if (sub.queue.length >= this.#queueLimit) {
      sub.dropped++;
      this.#hooks.overflow(sub, item.channel);
      return;
    }
    sub.queue.push(item);
    if (!sub.running) void this.#drain(sub);
  }

  /** Runs one subscription's handler over its queue, one message at a time. Never rejects. */
  async #drain(sub: Subscription): Promise<void> {
    sub.running = true;
    try {
      for (let item = sub.queue.shift(); item !== undefined && sub.active; item = sub.queue.shift()) {
        const meta: MessageMeta =
          sub.kind === "pattern" ? { channel: item.channel, pattern: sub.name } : { channel: item.channel };
        let message: unknown;
        try {
          message = this.#hooks.decode(item.data);
        } catch (err) {
          this.#hooks.failed(sub, meta, "decode", err);
          continue;
        }
        try {
          const settled = sub.handler(message as never, meta);
          // Only a promise makes the next message wait. A synchronous handler is done already: going on at once
          // handles a burst parsed from one read as it is dispatched, instead of queueing all but its first message
          // behind an await (and dropping those beyond queueLimit from a handler that was never busy).
          if (isThenable(settled)) await settled;
        } catch (err) {
          this.#hooks.failed(sub, meta, "handler", err);
        }
      }
    } finally {
      sub.running = false;
    }
  }
}
