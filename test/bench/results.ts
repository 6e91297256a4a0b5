// What a run measured: the result types `latest.json` holds, and the medians and ratios over rounds.
import { median } from "./measure.js";
import type { BenchOptions } from "./options.js";
import type { Scenario, ScenarioInstance } from "./types.js";

/** The raw EVALSHA floor every row is also compared to. */
export const FLOOR_ID = "floor/raw-evalsha";

/** One round of one scenario. */
export interface RoundResult {
  readonly round: number;
  readonly ops: number;
  readonly elapsedMs: number;
  readonly opsPerSec: number;
  readonly sequentialOps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Latency percentiles of the calls completed inside the closed-loop window (at `concurrency` in flight), ms. */
  readonly inFlightP50Ms?: number;
  readonly inFlightP99Ms?: number;
  /** Node process CPU (user + system, `process.cpuUsage`) over the closed loop ÷ operations completed, µs. */
  readonly clientCpuUsPerOp?: number;
  /** Redis CPU (INFO used_cpu_user + used_cpu_sys, summed over the scenario's servers) over the closed loop ÷ operations, µs. */
  readonly redisCpuUsPerOp?: number;
  /**
   * Time Redis spent running scripts (INFO commandstats `usec` of EVALSHA + EVAL, summed over the scenario's servers)
   * over the closed loop ÷ operations, µs: the scripts' own work, without parsing, networking or event-loop costs.
   * Absent when the row ran no script.
   */
  readonly scriptUsPerOp?: number;
}

/** Everything measured for one scenario. */
export interface ScenarioResult {
  readonly id: string;
  readonly group: string;
  readonly name: string;
  readonly kind: Scenario["kind"];
  readonly topology: Scenario["topology"];
  readonly unit: string;
  readonly baseline?: string;
  readonly reference?: string;
  /** `unavailable`: the code under test does not exist yet (not an error). */
  status: "ok" | "failed" | "unavailable";
  /** Why it is unavailable. */
  note?: string;
  /** First error when failed. */
  error?: string;
  readonly rounds: RoundResult[];
  /** Median over rounds of the closed-loop throughput. */
  opsPerSec?: number;
  /** Median over rounds of the sequential p50 / p99, ms. */
  p50Ms?: number;
  p99Ms?: number;
  /** Median over rounds of the closed loop's p50 / p99 (at `concurrency` in flight), ms. */
  inFlightP50Ms?: number;
  inFlightP99Ms?: number;
  /** Median over rounds of client (Node) and Redis CPU per operation in the closed loop, µs. */
  clientCpuUsPerOp?: number;
  redisCpuUsPerOp?: number;
  /** Median over rounds of the time inside scripts per operation (see {@link RoundResult.scriptUsPerOp}), µs. */
  scriptUsPerOp?: number;
  /** Median over rounds of ops/s ÷ the baseline's ops/s in the same round. */
  ratio?: number;
  /** Median over rounds of p50 ÷ the baseline's p50 in the same round (lower is better). */
  p50Ratio?: number;
  /** Median over rounds of ops/s ÷ the reference row's ops/s in the same round. */
  refRatio?: number;
  /** Median over rounds of ops/s ÷ the raw EVALSHA floor's ops/s in the same round. */
  floorRatio?: number;
  roundTrips?: {
    readonly ops: number;
    readonly roundTrips: number;
    readonly perOp: number;
    readonly declared?: number;
    /** How `declared` is checked: `exact` or `at-most` (a ceiling: micro-batched rows). */
    readonly bound?: "exact" | "at-most";
    /** Callers in flight while counting (1, or the closed loop's concurrency for micro-batched rows). */
    readonly concurrency: number;
    readonly note?: string;
    readonly sent: Readonly<Record<string, number>>;
  };
  memory?: { readonly entity: string; readonly count: number; readonly bytes: number; readonly bytesPerEntity: number };
}

/** A round-trip declaration a Coordis scenario broke. */
export interface RoundTripViolation {
  readonly id: string;
  readonly declared: number;
  readonly measured: number;
}

/** The whole run: what `latest.json` holds. */
export interface BenchReport {
  readonly date: string;
  readonly durationSec: number;
  readonly machine: {
    readonly cpuModel: string;
    readonly cpuCount: number;
    readonly totalMemoryMB: number;
    readonly platform: string;
    readonly arch: string;
    readonly loadAverageStart: number[];
    readonly loadAverageEnd: number[];
  };
  readonly versions: { readonly node: string; readonly redis: string; readonly ioredis: string };
  readonly options: Omit<BenchOptions, "filter" | "log"> & { filter?: string };
  readonly scenarios: ScenarioResult[];
  readonly roundTripViolations: RoundTripViolation[];
}

/** A scenario during a run: its instance once set up, its result so far. */
export interface Live {
  readonly scenario: Scenario;
  readonly result: ScenarioResult;
  instance?: ScenarioInstance;
  /** Per round: throughput and p50, for the ratios. */
  readonly perRound: Map<number, { opsPerSec: number; p50Ms: number }>;
}

/** An error as one line of the log or report. */
export function message(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Rounded to 3 decimals (figures in the report). */
export function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

/** Fills each result's medians over rounds and its ratios to its baseline, reference and the raw floor. */
export function aggregate(live: Live[]): void {
  const byId = new Map(live.map((l) => [l.scenario.id, l]));
  const ratioTo = (l: Live, otherId: string | undefined, pick: "opsPerSec" | "p50Ms") => {
    const other = otherId === undefined ? undefined : byId.get(otherId);
    if (other === undefined || other === l) return undefined;
    const ratios = [...l.perRound].map(([round, mine]) => {
      const theirs = other.perRound.get(round);
      return theirs === undefined || theirs[pick] <= 0 ? undefined : mine[pick] / theirs[pick];
    });
    const m = median(ratios);
    return m === undefined ? undefined : round3(m);
  };
  for (const l of live) {
    const r = l.result;
    if (r.rounds.length === 0) continue;
    const set = <K extends keyof ScenarioResult>(key: K, value: ScenarioResult[K] | undefined) => {
      if (value !== undefined) r[key] = value;
    };
    set("opsPerSec", median(r.rounds.map((x) => x.opsPerSec)));
    set("p50Ms", median(r.rounds.map((x) => x.p50Ms)));
    set("p99Ms", median(r.rounds.map((x) => x.p99Ms)));
    set("inFlightP50Ms", median(r.rounds.map((x) => x.inFlightP50Ms)));
    set("inFlightP99Ms", median(r.rounds.map((x) => x.inFlightP99Ms)));
    set("clientCpuUsPerOp", median(r.rounds.map((x) => x.clientCpuUsPerOp)));
    set("redisCpuUsPerOp", median(r.rounds.map((x) => x.redisCpuUsPerOp)));
    set("scriptUsPerOp", median(r.rounds.map((x) => x.scriptUsPerOp)));
    set("ratio", ratioTo(l, l.scenario.baseline, "opsPerSec"));
    set("p50Ratio", ratioTo(l, l.scenario.baseline, "p50Ms"));
    set("refRatio", ratioTo(l, l.scenario.reference, "opsPerSec"));
    set("floorRatio", ratioTo(l, FLOOR_ID, "opsPerSec"));
  }
}
