/**
 * `npm run test:chaos [-- --seed N] [--duration 30s] [--filter name]`: runs the chaos scenarios against real Redis
 * under seeded fault schedules, prints the table (scenario, operations, faults injected, violations, seed) and
 * writes it to test/chaos/results/latest.json. Exits 1 when any violation was found; rerun with the printed seed
 * to replay the same faults.
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatTable, runChaos, writeReport } from "./runner.js";

const USAGE = `usage: npm run test:chaos -- [--seed <0-4294967295>] [--duration <ms|Ns|Nm>] [--filter <text>]`;

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (m === null) throw new Error(`--duration "${text}" is not a duration (e.g. 30000, 30s, 2m)`);
  const n = Number(m[1]);
  const ms = m[2] === "m" ? n * 60_000 : m[2] === "s" ? n * 1_000 : n;
  if (ms < 500) throw new Error("--duration must be at least 500 ms");
  return Math.round(ms);
}

function parseSeed(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff)
    throw new Error(`--seed "${text}" is not an integer 0-4294967295`);
  return Number(text);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      duration: { type: "string" },
      filter: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const report = await runChaos({
    ...(values.seed === undefined ? {} : { seed: parseSeed(values.seed) }),
    ...(values.duration === undefined ? {} : { durationMs: parseDuration(values.duration) }),
    ...(values.filter === undefined ? {} : { filter: values.filter }),
    log: (line) => console.log(line),
  });
  const out = fileURLToPath(new URL("./results/latest.json", import.meta.url));
  writeReport(report, out);
  console.log(`\n${formatTable(report.results)}\n`);
  console.log(`written to ${out}`);
  if (report.violations > 0) {
    const filter = values.filter === undefined ? "" : ` --filter ${values.filter}`;
    const duration = values.duration === undefined ? "" : ` --duration ${values.duration}`;
    console.log(
      `${report.violations} violation(s). Replay: npm run test:chaos -- --seed ${report.seed}${duration}${filter}`,
    );
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    console.error(USAGE);
    process.exit(2);
  },
);
