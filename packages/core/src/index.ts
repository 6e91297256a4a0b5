/**
 * @coordis/core — what every Coordis primitive shares: a Redis connection from a URL, the Lua script registry,
 * the cluster-safe key builder, typed errors, the observer interface and input validation.
 * @packageDocumentation
 */
export { onAbort } from "./abort.js";
export { ACL_CLUSTER_RULES, ACL_COMMAND_RULES, type AclRulesOptions, aclRules } from "./acl.js";
export {
  Batcher,
  type BatchOptions,
  type BatchOutcome,
  type BatchRunner,
  type BatchSettings,
  batchSettings,
  DEFAULT_BATCH_MAX_SIZE,
  MAX_BATCH_DELAY_MS,
  MAX_BATCH_SIZE,
} from "./batcher.js";
export {
  BLOCK_TIMEOUT_MARGIN_MS,
  blockingRead,
  closeBlockingConnection,
  openBlockingConnection,
  whenReady,
} from "./blocking.js";
export { commandTimeoutOf, isClosed, isCluster, type RedisClient } from "./client.js";
export {
  assertSafeClient,
  assertSupportedClient,
  clientFailoverProblems,
  clientSafetyProblems,
  safeClusterOptions,
  safeRedisOptions,
  unsupportedClientOptions,
} from "./client-safety.js";
export {
  type ConnectOptions,
  connect,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_URL,
  type ParsedRedisUrl,
  parseRedisUrl,
} from "./connect.js";
export { CORK_MAX_COMMANDS, corkUntilTickEnd } from "./cork.js";
export {
  DEFAULT_DISCONNECT_TIMEOUT_MS,
  DISCONNECT_GRACE_MS,
  disconnectWithin,
  duplicateOwn,
  ownConnectionOptions,
} from "./disconnect.js";
export {
  type Durability,
  DurabilityError,
  type DurabilityFailure,
  type DurabilityOptions,
  type DurableOutcome,
  MAX_DURABILITY_REPLICAS,
  MAX_DURABILITY_TIMEOUT_MS,
  parseDurability,
  runScriptDurable,
  runScriptDurableOrThrow,
  WAITAOF_MIN_VERSION,
} from "./durability.js";
export {
  ClosedError,
  CoordisError,
  errorOf,
  InvalidArgumentError,
  isUnavailableCause,
  RedisUnavailableError,
  ScriptError,
  toCoordisError,
} from "./errors.js";
export {
  type InstrumentOptions,
  instrument,
  type OperationSite,
  type ReportAttributes,
  reportOperation,
} from "./instrument.js";
export { encodeText, jsonCodec, jsonText, parseCodec, type TextCodec } from "./json-codec.js";
export { faithfulJsonText } from "./json-faithful.js";
export {
  DEFAULT_PREFIX,
  type EntityKeys,
  entityKeys,
  hashTagOf,
  keyHead,
  MAX_NAME_BYTES,
  slotOf,
  validateName,
  validatePrefix,
} from "./keys.js";
export {
  type CoordisEvent,
  type CoordisObserver,
  combineObservers,
  noopObserver,
  notifyEvent,
  notifyOperation,
  type OperationEvent,
} from "./observer.js";
export { coreScripts } from "./scripts.generated.js";
export {
  DEADLINE_MARGIN_MS,
  defineScript,
  FALLBACK_DEADLINE_MS,
  runScript,
  runScriptDynamic,
  runScriptSource,
  type ScriptArgs,
  type ScriptDef,
  type ScriptKeys,
  withCommandDeadline,
} from "./scripts.js";
export { guardSentinelClient, SENTINEL_RECONNECT_MS, safeSentinelOptions } from "./sentinel-failover.js";
export { parseInfo, parseVersion, type ServerInfo, serverAtLeast, serverInfo } from "./server-info.js";
export { isThenable } from "./thenable.js";
export { MAX_TOKEN_BYTES, randomToken } from "./token.js";
export { undoUntilAnswered } from "./undo.js";
export * as validate from "./validate.js";
export { MAX_DURATION_MS } from "./validate.js";
