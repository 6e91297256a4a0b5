import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname } from "node:path";
import { randomSeed } from "@coordis/testing";
import type { ChaosScenario, ScenarioResult } from "./scenario.js";
import { scenarios as registered } from "./scenarios/index.js";

/** Options of {@link runChaos}. */
export interface RunChaosOptions {
  /** Seed for every scenario's fault schedule; default a random one (printed, so the run can be replayed). */
  seed?: number;
  /** Faulty phase per scenario, ms; default each scenario's own. */
  durationMs?: number;
  /** Run only scenarios whose name contains this text. */
  filter?: string;
  /** Scenarios to choose from; default the registered ones. */
  scenarios?: readonly ChaosScenario[];
  /** Progress output; default silent. */
  log?: (line: string) => void;
}

/** The outcome of one chaos run; written as JSON. */
export interface ChaosReport {
  /** When the run started (ISO 8601). */
  readonly date: string;
  /** The seed every scenario used. */
  readonly seed: number;
  /** Node version and platform, for comparing reports. */
  readonly environment: { node: string; platform: string; cpus: number };
  /** One result per scenario run. */
  readonly results: readonly ScenarioResult[];
  /** Sum of violations over all scenarios. */
  readonly violations: number;
}

/**
 * Runs the chosen scenarios one after another (they each start their own Redis, so they never share faults).
 * @throws Error when the filter matches no scenario
 */
export async function runChaos(options: RunChaosOptions = {}): Promise<ChaosReport> {
  const seed = options.seed ?? randomSeed();
  const log = options.log ?? (() => {});
  const chosen = (options.scenarios ?? registered).filter(
    (s) => options.filter === undefined || s.name.includes(options.filter),
  );
  if (chosen.length === 0) throw new Error(`no chaos scenario matches "${options.filter}"`);
  const date = new Date().toISOString();
  const results: ScenarioResult[] = [];
  for (const scenario of chosen) {
    const durationMs = options.durationMs ?? scenario.defaultDurationMs;
    log(`\n▶ ${scenario.name} (${durationMs} ms, seed ${seed}): ${scenario.description}`);
    const result = await scenario.run({ seed, durationMs, log: (line) => log(`  ${line.replace(/\n/g, "\n  ")}`) });
    for (const sample of result.samples) log(`  ✗ ${sample}`);
    results.push(result);
  }
  return {
    date,
    seed,
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: availableParallelism(),
    },
    results,
    violations: results.reduce((n, r) => n + r.violations, 0),
  };
}

/** The chaos table: scenario, operations, faults injected, violations, seed. */
export function formatTable(results: readonly ScenarioResult[]): string {
  const header = ["scenario", "operations", "faults injected", "violations", "seed"];
  const rows = results.map((r) => [
    r.scenario,
    String(r.operations),
    String(r.faultsInjected),
    String(r.violations),
    String(r.seed),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** Writes the report as pretty JSON (creating the directory). */
export function writeReport(report: ChaosReport, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
}
