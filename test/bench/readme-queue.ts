/**
 * The job-queue figures of `npm run bench:readme` for packages/queue/README.md: @coordis/queue against BullMQ in the
 * same rounds (rows `job-queue/*`): end-to-end jobs/s and the ratio, CPU per job on both sides, bulk add (with the raw
 * XADD pipeline floor), add → start at half load, and the performance targets against the measured figures.
 */
import type { BenchReport, ScenarioResult } from "./harness.js";
import { machineLine, wrapMarkdown } from "./readme-text.js";
import { int, ms, ratio, us } from "./report.js";

const ID = {
  e2e: "job-queue/coordis-e2e",
  bullE2e: "job-queue/bullmq-e2e",
  bulk: "job-queue/coordis-add-many",
  bullBulk: "job-queue/bullmq-add-bulk",
  rawBulk: "job-queue/raw-xadd-pipeline",
  half: "job-queue/coordis-half-load",
  bullHalf: "job-queue/bullmq-half-load",
} as const;

/** Performance targets: end to end and bulk add, × BullMQ in the same rounds. */
const E2E_TARGET = 4;
const BULK_TARGET = 5;

type Row = ScenarioResult;

/** The spread of `mine ÷ theirs` over the rounds both ran (same round, same machine load): "a–b×", or "". */
function spread(mine: Row, theirs: Row): string {
  const ratios: number[] = [];
  for (const r of mine.rounds) {
    const t = theirs.rounds.find((x) => x.round === r.round);
    if (t !== undefined && t.opsPerSec > 0) ratios.push(r.opsPerSec / t.opsPerSec);
  }
  if (ratios.length < 2) return "";
  return ` (${Math.min(...ratios).toFixed(1)}–${Math.max(...ratios).toFixed(1)}×)`;
}

/** "b ÷ a× less" (or lower) when both are measured. */
function less(a: number | undefined, b: number | undefined, word: string): string {
  return a === undefined || b === undefined || a <= 0 ? "—" : `${(b / a).toFixed(1)}× ${word}`;
}

/** A target line: the measured ratio and whether it reaches `min`. */
function target(what: string, v: number | undefined, min: number, extra = ""): string {
  if (v === undefined) return `- ${what}: not measured in this run.`;
  return `- ${what}: ${ratio(v)}, ${v >= min ? "**met**" : "**not met**"}.${extra}`;
}

/** The section's Markdown, or undefined when the run has no Coordis job-queue row. */
export function queueSection(report: BenchReport): string | undefined {
  const byId = new Map(report.scenarios.filter((s) => s.status === "ok").map((s) => [s.id, s]));
  const e2e = byId.get(ID.e2e);
  const bulk = byId.get(ID.bulk);
  const half = byId.get(ID.half);
  if (e2e === undefined && bulk === undefined && half === undefined) return undefined;
  const bullE2e = byId.get(ID.bullE2e);
  const bullBulk = byId.get(ID.bullBulk);
  const bullHalf = byId.get(ID.bullHalf);
  const raw = byId.get(ID.rawBulk);
  const ratioCell = (mine: Row | undefined, theirs: Row | undefined) =>
    mine?.refRatio === undefined || theirs === undefined ? "—" : `**${ratio(mine.refRatio)}**${spread(mine, theirs)}`;
  const rows = [
    "| | @coordis/queue | BullMQ | ratio |",
    "| --- | --: | --: | --: |",
    `| End to end, jobs/s (add + process + complete, results kept; 2 workers × concurrency 50, ` +
      `${report.options.concurrency} producers) | ${int(e2e?.opsPerSec)} | ${int(bullE2e?.opsPerSec)} | ` +
      `${ratioCell(e2e, bullE2e)} |`,
    `| Redis CPU per job, end to end | ${us(e2e?.redisCpuUsPerOp)} µs | ${us(bullE2e?.redisCpuUsPerOp)} µs | ` +
      `${less(e2e?.redisCpuUsPerOp, bullE2e?.redisCpuUsPerOp, "less")} |`,
    `| Node CPU per job, end to end (producers and workers in one process) | ${us(e2e?.clientCpuUsPerOp)} µs | ` +
      `${us(bullE2e?.clientCpuUsPerOp)} µs | ${less(e2e?.clientCpuUsPerOp, bullE2e?.clientCpuUsPerOp, "less")} |`,
    `| Bulk add, jobs/s (\`addMany\` / \`addBulk\`, 100 jobs per call) | ${int(bulk?.opsPerSec)} | ` +
      `${int(bullBulk?.opsPerSec)} | ${ratioCell(bulk, bullBulk)} |`,
    `| Redis CPU per job, bulk add | ${us(bulk?.redisCpuUsPerOp)} µs | ${us(bullBulk?.redisCpuUsPerOp)} µs | ` +
      `${less(bulk?.redisCpuUsPerOp, bullBulk?.redisCpuUsPerOp, "less")} |`,
    `| Add → handler start at half of each one's end-to-end jobs/s, p50 / p99 | ${ms(half?.inFlightP50Ms)} / ` +
      `${ms(half?.inFlightP99Ms)} ms | ${ms(bullHalf?.inFlightP50Ms)} / ${ms(bullHalf?.inFlightP99Ms)} ms | ` +
      `p99 ${less(half?.inFlightP99Ms, bullHalf?.inFlightP99Ms, "lower")} |`,
    `| Commands sent per job, one job at a time (add, fetch, completion, idle wait) | ` +
      `${e2e?.roundTrips?.perOp.toFixed(1) ?? "—"} | ${bullE2e?.roundTrips?.perOp.toFixed(1) ?? "—"} | |`,
  ];
  const floor =
    bulk?.ratio !== undefined && raw !== undefined
      ? ` \`addMany\` runs at ${ratio(bulk.ratio)} a raw pipeline of 100 \`XADD\` (${int(raw.opsPerSec)} jobs/s in ` +
        "this run), the cost of writing 100 stream entries alone, while it also stores each job and checks its id."
      : "";
  return wrapMarkdown([
    "Measured by `npm run bench -- --filter '^job-queue/'` (`test/bench/`, rows `job-queue/*`) and written here by " +
      "`npm run bench:readme`: @coordis/queue and BullMQ in the same process, against the same fresh Redis, in " +
      "interleaved rounds. Figures are medians over the rounds; each ratio is taken round by round (same round, same " +
      "machine load) and the spread across rounds is in brackets. Redis and Node share the machine's cores, so " +
      "throughput follows the CPU both spend per job and moves from round to round when the machine is busy: quote " +
      "the ratios and the CPU per job.",
    "",
    machineLine(report),
    "",
    ...rows,
    "",
    "Targets, checked against this run:",
    "",
    target(`End to end ≥ ${E2E_TARGET}× BullMQ jobs/s`, e2e?.refRatio, E2E_TARGET),
    target(`Bulk add ≥ ${BULK_TARGET}× BullMQ \`addBulk\``, bulk?.refRatio, BULK_TARGET, floor),
  ]);
}
