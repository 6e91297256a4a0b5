// The root README's scale model (`npm run bench:readme`): what one Redis core and a 3-shard Cluster serve per
// primitive, from the Redis CPU per operation of the same run.
import type { BenchReport, ScenarioResult } from "./harness.js";
import { int, us } from "./report.js";

/** Groups whose rows are single Redis operations of one key (the HTTP rows measure a web server, not Redis). */
const SKIPPED_GROUPS = new Set(["raw floor"]);
/** Rows below this Redis CPU per operation (in-process L1 hits) do not use Redis: no ceiling to quote. */
const MIN_REDIS_US = 0.5;
/** Shards of the Cluster the model quotes. */
const SHARDS = 3;

function modelled(s: ScenarioResult): s is ScenarioResult & { redisCpuUsPerOp: number } {
  return (
    s.status === "ok" &&
    s.topology === "single" &&
    !SKIPPED_GROUPS.has(s.group) &&
    !s.id.startsWith("http/") &&
    s.redisCpuUsPerOp !== undefined &&
    s.redisCpuUsPerOp >= MIN_REDIS_US
  );
}

/** The "Scale model" subsection: one row per single-server Coordis, peer or raw row with its Redis CPU per operation. */
export function scaleModel(report: BenchReport): string[] {
  const rows = report.scenarios.filter(modelled);
  if (rows.length === 0) return [];
  const out = [
    "### Scale model: what one Redis core serves",
    "",
    "Redis runs commands on one core, so its CPU per operation sets the ceiling of every deployment, whatever the " +
      "clients do: **operations per second per Redis core ≈ 10⁶ ÷ Redis CPU µs/op** (the column above, measured in " +
      "this run with networking and parsing included). A Redis Cluster of N shards multiplies that by N for work " +
      "spread over many keys (rate-limit keys, locks, boards, logs and the partitions of a queue hash to different " +
      "slots); one key, one board or one unpartitioned queue stays on one shard. Replicas do not add write capacity. " +
      "Client CPU is the other bound: each Node process serves about 10⁶ ÷ its client CPU µs/op. Rows that hardly " +
      "touch Redis (in-process L1 hits) are left out.",
    "",
    `| group | row | kind | Redis CPU µs/op | per Redis core, ops/s | ${SHARDS}-shard Cluster, ops/s |`,
    "|---|---|---|--:|--:|--:|",
  ];
  for (const s of rows) {
    const perCore = 1e6 / s.redisCpuUsPerOp;
    out.push(
      `| ${s.group} | ${s.name} | ${s.kind} | ${us(s.redisCpuUsPerOp)} | ${int(perCore)} | ${int(perCore * SHARDS)} |`,
    );
  }
  return out;
}
