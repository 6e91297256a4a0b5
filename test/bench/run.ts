/**
 * `npm run bench`: runs the benchmark harness, prints the Markdown table on stdout (progress on stderr) and writes
 * test/bench/results/latest.json (smoke.json for `--smoke`). Exits 1 when a Coordis scenario needs more round trips per operation than it
 * declares, 2 on a usage or harness error. See test/bench/README.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, runBench } from "./harness.js";
import { markdown } from "./report.js";

const here = dirname(fileURLToPath(import.meta.url));

async function main(): Promise<number> {
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const report = await runBench(options);
  process.stdout.write(markdown(report));
  const dir = join(here, "results");
  mkdirSync(dir, { recursive: true });
  // A smoke run is a check, not a measurement: it never replaces the committed latest.json.
  const file = join(dir, options.smoke ? "smoke.json" : "latest.json");
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(`wrote ${file}\n`);
  if (report.roundTripViolations.length > 0) {
    const lines = report.roundTripViolations.map(
      (v) => `  ${v.id}: ${v.measured} round trips per operation, declared ${v.declared}`,
    );
    process.stderr.write(
      `\n${"!".repeat(72)}\nROUND-TRIP CONTRACT BROKEN: a Coordis operation takes more round trips than it declares\n` +
        `${lines.join("\n")}\n${"!".repeat(72)}\n`,
    );
    return 1;
  }
  return 0;
}

/**
 * Exits with `code` once the event loop is empty; if a library left a handle open (a reconnecting client, a timer)
 * the process would never end, so after a grace second it exits anyway, naming what was left.
 */
function exit(code: number): void {
  process.exitCode = code;
  setTimeout(() => {
    const left = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap" && r !== "Timeout");
    process.stderr.write(`note: forcing exit with ${left.join(", ") || "timers"} still open\n`);
    process.exit(code);
  }, 1_000).unref();
}

main().then(exit, (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  exit(2);
});
