/**
 * @coordis/eventlog: event logs on Redis Streams with idempotent appends, retention, cursor paging, a live tail
 * that reports gaps, consumer groups (at-least-once, reclaiming, dead-lettering) and a tamper-evident hash chain.
 * @packageDocumentation
 */

export {
  type ChainKey,
  type ChainOption,
  entryMac,
  KEYED_GENESIS_HASH,
  type KeyedChainOptions,
} from "./chain.js";
export {
  type ConsumeContext,
  type ConsumeHandler,
  type ConsumeOptions,
  Consumer,
  type ConsumerStats,
  DEFAULT_STOP_TIMEOUT_MS,
} from "./consumer.js";
export {
  ConsumerGroup,
  type ConsumerGroupOptions,
  type ConsumerInfo,
  type GroupInfo,
  MAX_GROUP_NAME_BYTES,
} from "./consumer-group.js";
export { type Entry, GENESIS_HASH } from "./entries.js";
export { GapError, IdempotencyConflictError, UnverifiedEntryError } from "./errors.js";
export {
  type AppendOptions,
  type AppendResult,
  DEFAULT_IDEMPOTENCY_WINDOW_MS,
  DEFAULT_MAX_EVENT_BYTES,
  type DeadLetter,
  EventLog,
  type EventLogKeys,
  type EventLogOptions,
  MAX_IDEMPOTENCY_KEY_BYTES,
  MAX_READ_LIMIT,
  MAX_REPORTED,
  type ReadOptions,
  type ReadPage,
  type UnverifiedMode,
  type VerifyResult,
} from "./event-log.js";
export type { TailOptions } from "./tail.js";
