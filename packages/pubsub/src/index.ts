/**
 * @coordis/pubsub: typed Redis pub/sub over one subscriber connection per instance, restoring subscriptions after
 * reconnects (and saying so), with bounded per-subscription queues and sharded pub/sub on Redis Cluster.
 * @packageDocumentation
 */
export { MAX_CHANNEL_BYTES, validateChannel, validatePattern } from "./channel-names.js";
export { type Codec, jsonCodec } from "./codec.js";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_QUEUE_LIMIT,
  type HandlerErrorInfo,
  type MessageHandler,
  type MessageMeta,
  type OverflowInfo,
  PubSub,
  type PubSubEvents,
  type PubSubOptions,
  type PubSubStats,
  type ResubscribedInfo,
  type Unsubscribe,
} from "./pubsub.js";
