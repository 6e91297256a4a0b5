import type { RedisServer } from "@coordis/testing";
import type { Redis, RedisOptions } from "ioredis";

/** Which servers a scenario runs against: the standalone server or the group of 3 independent masters. */
export type Topology = "single" | "group3";

/** Who wrote the code under test: raw ioredis (the floor), a peer library, or Coordis. */
export type ScenarioKind = "raw" | "peer" | "coordis";

/** What the harness hands a scenario's `setup`. */
export interface SetupContext {
  /** The standalone server. */
  readonly single: RedisServer;
  /** Three independent masters (Redlock). */
  readonly group: readonly RedisServer[];
  /**
   * A new ioredis connection to `server` (default the standalone one) with ioredis' default options plus `options`,
   * closed by the harness after the run. Every scenario (raw, peer, Coordis) gets the same kind of client.
   */
  client(server?: RedisServer, options?: RedisOptions): Redis;
  /** A key prefix unique to this scenario (letters, digits, dashes). */
  readonly prefix: string;
  /**
   * Builds a value once per run and hands the same one to every scenario asking for `key` (e.g. a pre-populated
   * board several read scenarios share). Keys it writes must use `sharedPrefix`.
   */
  shared<T>(key: string, build: () => Promise<T>): Promise<T>;
  /** Key prefix for shared values. */
  readonly sharedPrefix: string;
  /** How many entities read scenarios pre-populate (leaderboard members, cache keys). */
  readonly populate: number;
  /** Smoke mode: tiny durations. */
  readonly smoke: boolean;
}

/** Completed operations in a fixed window. */
export interface ThroughputResult {
  /** Operations completed inside the window. */
  readonly ops: number;
  /** Operations completed in all, including those in flight when the window closed (CPU per operation). */
  readonly completed?: number;
  /** Latency of each operation completed inside the window, ms (p50 / p99 under load); absent for custom loops. */
  readonly samplesMs?: number[];
  /** The window's actual length, ms. */
  readonly elapsedMs: number;
  /** Operations that threw (the scenario is then reported as failed). */
  readonly errors: number;
  /** The first error, if any. */
  readonly error?: string;
}

/** Per-operation latencies of one caller, ms. */
export interface LatencyResult {
  readonly samplesMs: number[];
  readonly errors: number;
  readonly error?: string;
}

/**
 * A scenario after setup. Either `op` (one operation; the harness drives closed loops and sequential callers
 * around it) or the custom `throughput` + `latency` + `countOps` trio (end-to-end work queues).
 */
export interface ScenarioInstance {
  /** One operation; `n` is unique and increasing within the run (use it to spread keys). */
  op?(n: number): Promise<unknown>;
  /** Custom closed loop: `concurrency` callers for `durationMs`. */
  throughput?(durationMs: number, concurrency: number): Promise<ThroughputResult>;
  /** Custom sequential latency for `durationMs`. */
  latency?(durationMs: number): Promise<LatencyResult>;
  /** Runs `count` operations one after another (round-trip counting); default `op` in a loop. */
  countOps?(count: number): Promise<void>;
  /** Untimed, before each round (e.g. a fresh queue). */
  reset?(): Promise<void>;
  /** Creates entity `j` of a fresh set (memory per entity: INFO used_memory delta ÷ count). */
  entity?(j: number): Promise<unknown>;
  /** Stops workers and the like; connections from `ctx.client` are closed by the harness. */
  teardown?(): Promise<void>;
}

/** A benchmark scenario. */
export interface Scenario {
  /** Unique id, matched by `--filter` (e.g. `lock/coordis-mutex`). */
  readonly id: string;
  /** Table group (e.g. `lock cycle`). */
  readonly group: string;
  /** Row label. */
  readonly name: string;
  readonly kind: ScenarioKind;
  readonly topology: Topology;
  /** Unit of one operation: `ops`, `cycles`, `jobs`. */
  readonly unit?: string;
  /** Id of the raw scenario this row is divided by (same round); none for the raw rows themselves. */
  readonly baseline?: string;
  /** Id of a second comparison row (a peer, or the 1-rule limiter), shown as "× ref". */
  readonly reference?: string;
  /** Declared round trips per operation; a Coordis scenario measuring more fails the run. */
  readonly roundTrips?: number;
  /**
   * `exact` (default): the declared figure must hold exactly (the smoke test checks equality). `at-most`: a ceiling
   * (micro-batched rows, whose calls share script calls and measure below 1).
   */
  readonly roundTripsBound?: "exact" | "at-most";
  /**
   * Callers in flight while round trips are counted (default 1: one operation at a time). Micro-batched rows count
   * at the closed loop's concurrency, where batching happens.
   */
  readonly roundTripConcurrency?: "one" | "closed-loop";
  /** Why the declared figure is what it is (shown in the JSON). */
  readonly roundTripsNote?: string;
  /** Entity counted for memory per entity (`member`, `key`, `entry`); needs `entity` on the instance. */
  readonly memoryEntity?: string;
  /**
   * Measured in a part of the run of its own (set up, warmed up, measured in interleaved rounds and torn down with
   * the other scenarios of the same `isolated` name only, on Redis servers of its own), so that nothing the other
   * scenarios leave running (their clients, workers and timers in the bench process, their data in Redis) weighs on
   * it. Rows compared with each other must share the part.
   */
  readonly isolated?: string;
  /** Builds the scenario; throw {@link Unavailable} when the code under test is not there yet. */
  setup(ctx: SetupContext): Promise<ScenarioInstance>;
}

/** Thrown by `setup` when the code a scenario needs does not exist yet (the row is skipped, not failed). */
export class Unavailable extends Error {
  override readonly name = "Unavailable";
}
