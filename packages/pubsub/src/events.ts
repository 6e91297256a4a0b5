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
 * Events a {@link PubSub} emits. None of them is `error`, so an unlistened event never throws. An exception thrown by
 * a listener, or the rejection of the promise an async listener returns, is dropped: the event's other listeners
 * still run, and delivery and the connection are unaffected.
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
