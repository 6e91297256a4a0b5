import { runChaos } from "../runner.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

/** Seed for the default suite's short chaos runs: random, or COORDIS_CHAOS_SEED to replay one. */
export const shortRunSeed: number | undefined =
  process.env.COORDIS_CHAOS_SEED === undefined ? undefined : Number(process.env.COORDIS_CHAOS_SEED);

/**
 * Runs one scenario for `durationMs` (the default suite's short version) and returns its result with the command
 * that replays it, for assertion messages.
 */
export async function runShort(
  scenario: ChaosScenario,
  durationMs: number,
): Promise<{ result: ScenarioResult; replay: string }> {
  const report = await runChaos({
    scenarios: [scenario],
    durationMs,
    ...(shortRunSeed === undefined ? {} : { seed: shortRunSeed }),
  });
  const result = report.results[0] as ScenarioResult;
  const replay =
    `replay: COORDIS_CHAOS_SEED=${report.seed} npx vitest run <this file>, or npm run test:chaos -- ` +
    `--seed ${report.seed} --duration ${durationMs} --filter ${scenario.name}; details: ${JSON.stringify(result.details)}`;
  return { result, replay };
}
