/**
 * @coordis/cache: a two-tier cache (in-process L1 + Redis L2) with invalidation across replicas that detects missed
 * messages, stampede protection across replicas, stale-while-revalidate and graceful degradation; plus a Redis
 * session store for @fastify/session.
 * @packageDocumentation
 */
export { Cache } from "./cache.js";
export type { CacheStats } from "./cache-stats.js";
export type { CircuitBreakerOptions, CircuitState } from "./circuit-breaker.js";
export { type CacheCodec, jsonCodec } from "./codec.js";
export type { Loader } from "./fill.js";
export type { GapReason } from "./invalidation-bus.js";
export {
  type CacheOptions,
  DEFAULT_L1_MAX_ENTRIES,
  DEFAULT_L1_TTL_MS,
  DEFAULT_LOCK_TTL_MS,
  DEFAULT_LOCK_WAIT_MS,
  type EntryOptions,
  type GetOrSetOptions,
  type L1Options,
  MAX_TAGS,
} from "./options.js";
export {
  DEFAULT_SESSION_TTL_MS,
  DEFAULT_TOMBSTONE_MS,
  RedisSessionStore,
  type SessionCookie,
  type SessionData,
  type SessionSerializer,
  type SessionStoreOptions,
  type StoreCallback,
  type StoredSession,
  type StoreGetCallback,
} from "./session-store.js";
