/**
 * @coordis/pubsub: typed Redis pub/sub over one subscriber connection per instance, restoring subscriptions after
 * reconnects (and saying so), with bounded per-subscription queues and sharded pub/sub on Redis Cluster.
 * @packageDocumentation
 */
export { MAX_CHANNEL_BYTES, validateChannel, validatePattern } from "./channel-names.js";
export { type Codec, jsonCodec } from "./codec.js";
export { CLOSE_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS } from "./connection.js";
export type {
  HandlerErrorInfo,
  MessageHandler,
  MessageMeta,
  OverflowInfo,
  PubSubEvents,
  PubSubStats,
  ResubscribedInfo,
  Unsubscribe,
} from "./events.js";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_QUEUE_LIMIT,
  INTERNAL_CHANNEL_KIND,
  type PubSubOptions,
} from "./options.js";
export { PubSub } from "./pubsub.js";
