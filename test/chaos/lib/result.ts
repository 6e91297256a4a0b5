import { performance } from "node:perf_hooks";
import type { ScenarioResult } from "../scenario.js";
import type { Violations } from "./workers.js";

/**
 * A scenario's row of the chaos table: what it did (`fields`) plus what `violations` recorded (count, kinds in
 * `details.violationsByKind`, samples) and the wall time since `started` (a `performance.now()` value).
 */
export function scenarioResult(
  started: number,
  violations: Violations,
  fields: Pick<ScenarioResult, "scenario" | "operations" | "faultsInjected" | "seed" | "details">,
): ScenarioResult {
  return {
    ...fields,
    violations: violations.count,
    elapsedMs: Math.round(performance.now() - started),
    details: { ...fields.details, violationsByKind: violations.byKind },
    samples: violations.samples,
  };
}
