import type { CircuitState } from "./circuit-breaker.js";

/** Counters of a {@link Cache}, for tests and metrics. */
export interface CacheStats {
  /** Entries in L1. */
  readonly l1Entries: number;
  /** Times L1 was dropped because invalidations may have been missed. */
  readonly gaps: number;
  /** Whether the invalidation subscription is live (always `false` without a bus). */
  readonly busHealthy: boolean;
  /** Circuit breaker state. */
  readonly circuit: CircuitState;
  /** Redis calls the circuit breaker refused without sending them. */
  readonly shortCircuited: number;
  /** Redis calls (scripts and commands) the circuit breaker let through. */
  readonly redisCalls: number;
  /** Loader calls made by this instance. */
  readonly loads: number;
}
