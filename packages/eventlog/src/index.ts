/**
 * @coordis/eventlog: event logs on Redis Streams with idempotent appends, retention, cursor paging, a live tail
 * that reports gaps, consumer groups (at-least-once, reclaiming, dead-lettering) and a tamper-evident hash chain.
 * @packageDocumentation
 */

export { KEYED_CONTENTION_MS } from "./append.js";
export {
  type ChainKey,
  type ChainOption,
  entryMac,
  KEYED_GENESIS_HASH,
  type KeyedChainOptions,
} from "./chain.js";
export { Consumer } from "./consumer.js";
export { ConsumerGroup } from "./consumer-group.js";
export {
  type ConsumeOptions,
  type ConsumerGroupOptions,
  DEFAULT_STOP_TIMEOUT_MS,
  MAX_GROUP_NAME_BYTES,
  type StopOptions,
} from "./consumer-options.js";
export { type Entry, GENESIS_HASH, WALK_PAGE_BYTES } from "./entries.js";
export { GapError, IdempotencyConflictError, UnverifiedEntryError } from "./errors.js";
export { EventLog } from "./event-log.js";
export {
  type AppendOptions,
  DEFAULT_IDEMPOTENCY_WINDOW_MS,
  DEFAULT_MAX_EVENT_BYTES,
  type DeadLetterOptions,
  type EventLogOptions,
  MAX_IDEMPOTENCY_KEY_BYTES,
  MAX_READ_LIMIT,
  type ReadOptions,
  type TailOptions,
  type UnverifiedMode,
} from "./options.js";
export { eventlogScripts } from "./scripts.generated.js";
export {
  type AppendResult,
  type ConsumeContext,
  type ConsumeHandler,
  type ConsumerInfo,
  type ConsumerStats,
  type DeadLetter,
  type EventLogKeys,
  type GroupInfo,
  MAX_REPORTED,
  type ReadPage,
  type VerifyResult,
} from "./types.js";
