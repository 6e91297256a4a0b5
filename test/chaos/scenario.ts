/**
 * The chaos runner's contract: a scenario runs a workload against real Redis while a seeded fault schedule breaks
 * things, and a checker counts violations of the promises under test. The same seed replays the same faults.
 */

/** What a scenario gets from the runner. */
export interface ScenarioContext {
  /** Seed of the fault schedule (and of anything else the scenario randomises). */
  readonly seed: number;
  /** How long the faulty phase lasts, ms. */
  readonly durationMs: number;
  /** Progress output (the CLI prints it; the smoke test keeps it quiet). */
  readonly log: (line: string) => void;
}

/** What a scenario reports; one row of the chaos table. */
export interface ScenarioResult {
  /** Scenario name. */
  readonly scenario: string;
  /** Operations the workload completed or failed (every call counted once). */
  readonly operations: number;
  /** Faults the schedule actually injected. */
  readonly faultsInjected: number;
  /** Broken promises found by the checker; 0 is the only passing value. */
  readonly violations: number;
  /** Seed to replay the run with. */
  readonly seed: number;
  /** Wall time of the whole scenario, ms. */
  readonly elapsedMs: number;
  /** Scenario-specific counters (outcomes, fault kinds, settings). */
  readonly details: Readonly<Record<string, unknown>>;
  /** The first few violations, described for people. */
  readonly samples: readonly string[];
}

/** A registered chaos scenario. */
export interface ChaosScenario {
  /** Short kebab-case name, used by `--filter`. */
  readonly name: string;
  /** One line: the workload, the faults, the property checked. */
  readonly description: string;
  /** Duration of the faulty phase when `--duration` is not given, ms. */
  readonly defaultDurationMs: number;
  /** Runs the scenario; must stop every server and client it started, even when it throws. */
  run(context: ScenarioContext): Promise<ScenarioResult>;
}
