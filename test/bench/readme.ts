/**
 * `npm run bench:readme`: writes the figures of test/bench/results/latest.json (the last `npm run bench`) into the
 * READMEs, between `<!-- bench:start -->` and `<!-- bench:end -->`:
 * - the root README.md: a `## Performance` section (date, machine, how to read the ratios, every row, the scale model
 *   of readme-scale.ts, the performance targets against the measured figures); markers and section are appended at the end when absent;
 * - each package README (lock, ratelimit, leaderboard, eventlog, cache): a small table of that package's rows inside
 *   its "Performance" section (placeholder sentences saying numbers come later are removed; the rest is kept).
 * - packages/queue/README.md: @coordis/queue against BullMQ (readme-queue.ts).
 * Only the text between the markers is ever rewritten once they exist. Exits 1 when latest.json is missing.
 * `--from <file>` reads another results file; `--only root,queue` writes only those READMEs (e.g. after a run filtered
 * to one package, whose figures must not replace the root README's full table).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchReport, ScenarioResult } from "./harness.js";
import { FLOOR_ID } from "./harness.js";
import { queueSection } from "./readme-queue.js";
import { scaleModel } from "./readme-scale.js";
import { machineLine, wrap, wrapMarkdown } from "./readme-text.js";
import { int, memory, ms, ratio, refCell, roundTrips, throughput, us } from "./report.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const START = "<!-- bench:start -->";
const END = "<!-- bench:end -->";

/** Which package README quotes which rows (by id prefix). */
const PACKAGES: Record<string, readonly string[]> = {
  lock: ["lock/"],
  ratelimit: ["ratelimit/"],
  leaderboard: ["leaderboard/"],
  eventlog: ["eventlog/", "queue/"],
  cache: ["cache/"],
};

type Row = ScenarioResult;

function statusNote(r: Row): string {
  if (r.status === "unavailable") return " (not available yet)";
  if (r.status === "failed") return " (FAILED)";
  return "";
}

/** The table every README uses: one row per scenario. */
function table(report: BenchReport, rows: readonly Row[]): string[] {
  const byId = new Map(report.scenarios.map((s) => [s.id, s]));
  const c = report.options.concurrency;
  const out = [
    `| scenario | ops/s | × raw | × ref | × floor | p50 ms (1 caller) | p99 ms (${c} in flight) | round trips/op | ` +
      "client CPU µs/op | Redis CPU µs/op | script µs/op | memory |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  for (const r of rows) {
    out.push(
      `| ${r.name}${statusNote(r)} | ${throughput(r)} | ${r.baseline === undefined ? "base" : ratio(r.ratio)} | ` +
        `${refCell(r, byId)} | ${r.id === FLOOR_ID ? "1.00×" : ratio(r.floorRatio)} | ${ms(r.p50Ms)} | ` +
        `${ms(r.inFlightP99Ms)} | ${roundTrips(r)} | ${us(r.clientCpuUsPerOp)} | ${us(r.redisCpuUsPerOp)} | ` +
        `${us(r.scriptUsPerOp)} | ${memory(r)} |`,
    );
  }
  return out;
}

const isBatched = (r: Row) => r.roundTrips?.bound === "at-most";
const ok = (r: Row | undefined): r is Row => r !== undefined && r.status === "ok";
const met = (yes: boolean) => (yes ? "**met**" : "**not met**");
const list = (rows: readonly Row[], pick: (r: Row) => string) => rows.map((r) => `${r.name} ${pick(r)}`).join(", ");

/**
 * The work-queue target (≥ 5× BullMQ jobs/s end to end) judged on the best Coordis work-queue row (`queue/coordis…`:
 * plain appends, micro-batched appends), naming that row and listing the other rows' figures.
 */
function workQueueTarget(report: BenchReport, out: string[]): void {
  const what = "Work queue end to end ≥ 5× BullMQ jobs/s";
  const rows = report.scenarios
    .filter((r) => ok(r) && r.kind === "coordis" && r.id.startsWith("queue/") && r.refRatio !== undefined)
    .sort((a, b) => (b.refRatio as number) - (a.refRatio as number));
  const [best, ...others] = rows;
  if (best === undefined) {
    out.push(`- ${what}: not measured in this run.`);
    return;
  }
  const v = best.refRatio as number;
  const named = (r: Row) => `"${r.name}"`;
  out.push(
    `- ${what}: ${ratio(v)} ${met(v >= 5)}, judged on the best Coordis work-queue row, ${named(best)}` +
      (others.length === 0
        ? "."
        : `; other rows: ${others.map((r) => `${named(r)} ${ratio(r.refRatio)}`).join(", ")}.`),
  );
}

/** Each performance goal with the measured value and whether it is met, computed from the figures. */
function targets(report: BenchReport): string[] {
  const byId = new Map(report.scenarios.map((s) => [s.id, s]));
  const out: string[] = [];
  const notMeasured = (what: string) => out.push(`- ${what}: not measured in this run.`);
  const c = report.options.concurrency;

  // Coordis single operations: one script call by contract (declared exactly 1), unbatched.
  const singles = report.scenarios.filter(
    (r) => ok(r) && r.kind === "coordis" && r.roundTrips?.declared === 1 && !isBatched(r) && r.ratio !== undefined,
  );
  if (singles.length === 0) notMeasured(`Every Coordis single operation ≥ 0.95× raw at ${c} in flight`);
  else {
    const below = singles.filter((r) => (r.ratio as number) < 0.95);
    out.push(
      `- Every Coordis single operation ≥ 0.95× its group's raw baseline at ${c} in flight: ` +
        `${singles.length - below.length} of ${singles.length} rows reach it, ${met(below.length === 0)}` +
        (below.length === 0 ? "." : `; below: ${list(below, (r) => ratio(r.ratio))}.`),
    );
    const floorRow = byId.get(FLOOR_ID);
    const scripted = below.filter((r) => r.scriptUsPerOp !== undefined);
    if (floorRow?.scriptUsPerOp !== undefined && scripted.length > 0) {
      out.push(
        `- Inside Redis (script µs/op, the scripts' own work) for the rows below 0.95×: the raw INCR+PEXPIRE floor ` +
          "script " +
          `${us(floorRow.scriptUsPerOp)}; ${list(scripted, (r) => us(r.scriptUsPerOp))}.`,
      );
    }
    const slow = singles.filter((r) => r.p50Ratio !== undefined && r.p50Ratio > 1.05);
    out.push(
      `- …and sequential p50 ≤ 1.05× raw: ${singles.length - slow.length} of ${singles.length} rows reach it, ` +
        `${met(slow.length === 0)}${slow.length === 0 ? "." : `; above: ${list(slow, (r) => ratio(r.p50Ratio))}.`}`,
    );
  }

  const refTarget = (id: string, what: string, min: number, pick: "refRatio" | "ratio" = "refRatio") => {
    const r = byId.get(id);
    const v = r?.[pick];
    if (!ok(r) || v === undefined) return notMeasured(what);
    const ref = pick === "refRatio" && r.reference !== undefined ? byId.get(r.reference) : undefined;
    const scripts =
      r.scriptUsPerOp !== undefined && ref?.scriptUsPerOp !== undefined
        ? ` Script µs/op: ${us(r.scriptUsPerOp)} against ${us(ref.scriptUsPerOp)} for ${ref.name}.`
        : "";
    out.push(`- ${what}: ${ratio(v)} ${met(v >= min)}.${scripts}`);
  };
  refTarget("ratelimit/coordis-3-rules", "Coordis 3-rule limit ≥ 0.9× Coordis 1 rule", 0.9);
  refTarget("lock/coordis-redlock-x3", "Redlock ×3 ≥ 1.2× redlock@5 beta on the same 3 masters", 1.2);
  workQueueTarget(report, out);
  refTarget("job-queue/coordis-e2e", "Job queue (@coordis/queue) end to end ≥ 4× BullMQ jobs/s", 4);
  refTarget("job-queue/coordis-add-many", "Job queue bulk add (addMany) ≥ 5× BullMQ addBulk", 5);

  // Micro-batching: ≥ 3× raw unbatched EVALSHA throughput at p99 ≤ 5 ms (at `c` in flight).
  const floor = byId.get(FLOOR_ID);
  const batched = report.scenarios.filter((r) => ok(r) && isBatched(r));
  if (batched.length === 0) notMeasured("Micro-batched consume / submit / append ≥ 3× raw EVALSHA at p99 ≤ 5 ms");
  // An HTTP request costs far more than a library call before any limiter runs: the HTTP rows are reported against
  // Fastify with no limiter at all, not held to the library calls' 3×.
  const httpBase = byId.get("http/fastify-unlimited");
  for (const r of batched) {
    if (r.id.startsWith("http/")) {
      out.push(
        `- ${r.name}: ${ratio(r.floorRatio)} raw EVALSHA (${c} in flight; no p99 at ${c} in flight is recorded for ` +
          `HTTP rows); the 3× goal is ` +
          `for library calls: an HTTP request through Fastify with no limiter at all runs at ` +
          `${ratio(httpBase?.floorRatio)} raw EVALSHA in this run, and this row at ${ratio(
            httpBase?.opsPerSec === undefined || r.opsPerSec === undefined
              ? undefined
              : r.opsPerSec / httpBase.opsPerSec,
          )} of that.`,
      );
      continue;
    }
    const x = r.floorRatio;
    const p99 = r.inFlightP99Ms;
    if (x === undefined || p99 === undefined) {
      notMeasured(`${r.name} ≥ 3× raw EVALSHA at p99 ≤ 5 ms`);
      continue;
    }
    let why = "";
    const client = r.clientCpuUsPerOp;
    const redis = r.redisCpuUsPerOp;
    if (client !== undefined && redis !== undefined && floor?.opsPerSec !== undefined) {
      // Node and Redis each get about one core of the two: 10⁶ ÷ (CPU µs per operation) bounds each side's ops/s.
      const side = client >= redis ? "client (Node)" : "Redis";
      const ceiling = 1e6 / Math.max(client, redis);
      const needed = 3 * floor.opsPerSec;
      why =
        ` CPU per op: client ${us(client)} µs, Redis ${us(redis)} µs → ${side}-bound, at most ≈ ${int(ceiling)} ops/s ` +
        `on one core; 3× raw EVALSHA in this run is ${int(needed)} ops/s, i.e. ≤ ${us(1e6 / needed)} µs/op on each side.` +
        (r.scriptUsPerOp === undefined
          ? ""
          : ` The batch script's own work alone is ${us(r.scriptUsPerOp)} µs per call` +
            (r.scriptUsPerOp > 1e6 / needed ? ", above that budget." : "."));
    }
    out.push(
      `- ${r.name} ≥ 3× raw EVALSHA at p99 ≤ 5 ms (${c} in flight): ${ratio(x)} at p99 ${ms(p99)} ms ` +
        `${met(x >= 3 && p99 <= 5)}.${why}`,
    );
  }

  const exact = report.scenarios.filter(
    (r) => r.kind === "coordis" && r.roundTrips?.declared !== undefined && !isBatched(r),
  );
  if (exact.length === 0) notMeasured("Exactly the declared round trips per operation");
  else {
    const off = exact.filter((r) => r.roundTrips?.perOp !== r.roundTrips?.declared);
    out.push(
      `- Exactly the declared round trips (1 per operation where the contract says one; lock cycles 2, Redlock ×3 6): ` +
        `${exact.length - off.length} of ${exact.length} rows, ${met(off.length === 0)}` +
        (off.length === 0 ? "." : `; off: ${list(off, (r) => `${r.roundTrips?.perOp} vs ${r.roundTrips?.declared}`)}.`),
    );
  }
  // Targets of test/bench/README.md beyond the root goals list.
  refTarget("leaderboard/coordis-submit", "Leaderboard submit ≥ 0.95× raw ZADD", 0.95, "ratio");
  refTarget("cache/coordis-l1", "Cache L1 hit ≥ bentocache's L1 hit", 1);
  refTarget("cache/coordis-l2", "Cache L2 hit ≥ 0.9× raw GET", 0.9, "ratio");
  return out;
}

function rootSection(report: BenchReport): string {
  const c = report.options.concurrency;
  const out: string[] = [
    "## Performance",
    "",
    "_Generated by `npm run bench:readme` from `test/bench/results/latest.json`, written by `npm run bench` " +
      "(method and scenarios: [test/bench/README.md](test/bench/README.md)). Do not edit between the markers._",
    "",
    machineLine(report),
    "",
    "How to read it:",
    "",
    "- One process runs every row against the same fresh Redis, interleaved round by round. On this shared 2-core " +
      "machine absolute ops/s drift 2–3× between runs; ratios taken in the same round drift much less: **quote " +
      "ratios, not ops/s**.",
    `- **ops/s**: closed loop, ${c} callers in flight (\`cycles\` = acquire + release, \`jobs\` = added and ` +
      "processed). **× raw**: ÷ the group's raw ioredis baseline in the same round (`base` marks it). **× ref**: ÷ " +
      "the named row (a peer library, or the unbatched / 1-rule Coordis row). **× floor**: ÷ raw ioredis EVALSHA of " +
      "a trivial INCR+PEXPIRE script, the one-script-call-per-operation floor. All are medians over rounds.",
    `- **p50 ms**: one caller, one operation at a time. **p99 ms**: latency with ${c} in flight (the closed loop).`,
    "- **round trips/op**: commands the client sent per operation (MONITOR); `(= n)` a figure declared exactly, " +
      `\`(≤ n)\` a ceiling — micro-batched rows, counted with ${c} in flight, where calls share one script call.`,
    "- **client / Redis CPU µs/op**: CPU time of the Node process (`process.cpuUsage`) and of redis-server (INFO " +
      "`used_cpu_user + used_cpu_sys`, summed over the 3 masters for Redlock ×3) during the closed loop, ÷ " +
      "operations. On 2 cores each side gets about one: 10⁶ ÷ the larger figure bounds ops/s, and that side is the " +
      "bottleneck.",
    "- **script µs/op**: time redis-server spent inside scripts (INFO commandstats `usec` of EVALSHA + EVAL, " +
      "commands run by the scripts included) during the closed loop, ÷ operations: the scripts' own work, without " +
      "parsing, networking or event-loop costs (— for rows that run no script).",
    "- **Write coalescing.** Every Coordis script call corks its connection until the end of the tick, in chunks of " +
      "16 commands (`corkUntilTickEnd` in `@coordis/core`): commands written together leave in one system call. The " +
      'raw ioredis baselines do not; the floor row "writes corked per tick" applies the same trick to raw ' +
      "ioredis, to show what it alone is worth.",
    "- **memory**: Redis `used_memory` growth per entity over 10 000 new ones (allocator overhead included, ±10 %).",
  ];
  const groups = [...new Set(report.scenarios.map((s) => s.group))];
  for (const group of groups) {
    out.push(
      "",
      `### ${group}`,
      "",
      ...table(
        report,
        report.scenarios.filter((s) => s.group === group),
      ),
    );
  }
  const scale = scaleModel(report);
  if (scale.length > 0) out.push("", ...scale);
  out.push("", "### Performance goals, checked against this run", "", ...targets(report));
  const failed = report.scenarios.filter((s) => s.status !== "ok");
  if (failed.length > 0) {
    out.push("", "Rows without figures:", "");
    for (const s of failed) {
      const why = s.status === "failed" ? (s.error ?? "failed") : (s.note ?? "");
      out.push(`- ${s.id}: ${why.replace(/\s+/g, " ").slice(0, 200)}`);
    }
  }
  return wrapMarkdown(out);
}

/** A package's Coordis rows plus the rows they are divided by (baseline, reference), in table order. */
function packageRows(report: BenchReport, prefixes: readonly string[]): Row[] {
  const mine = report.scenarios.filter((s) => s.kind === "coordis" && prefixes.some((p) => s.id.startsWith(p)));
  const wanted = new Set(mine.map((s) => s.id));
  for (const s of mine) {
    if (s.baseline !== undefined) wanted.add(s.baseline);
    if (s.reference !== undefined) wanted.add(s.reference);
  }
  return report.scenarios.filter((s) => wanted.has(s.id));
}

function packageSection(report: BenchReport, prefixes: readonly string[]): string | undefined {
  const rows = packageRows(report, prefixes);
  if (rows.length === 0) return undefined;
  return wrapMarkdown([
    "Measured by `npm run bench` (`test/bench/`), written here by `npm run bench:readme`. " +
      "Quote the ratios, not the ops/s (this machine is shared and noisy); the columns and the whole table are " +
      "explained in the [root README's Performance section](../../README.md#performance).",
    "",
    machineLine(report),
    "",
    ...table(report, rows),
  ]);
}

/** Replaces the text between the markers; `undefined` when they are absent. */
function replaceBetween(text: string, body: string): string | undefined {
  const start = text.indexOf(START);
  const end = text.indexOf(END, start + START.length);
  if (start < 0 || end < 0) return undefined;
  return `${text.slice(0, start + START.length)}\n${body}\n${text.slice(end)}`;
}

/** A sentence saying numbers come from the harness later / are not quoted: replaced by the generated table. */
const PLACEHOLDER = /npm run bench.*(none|not quote|does not quote|until|separate issue)/i;

/**
 * First write into a package README: drops placeholder sentences from the "Performance" section's paragraphs and
 * puts the marker block at the end of that section (or appends a section when there is none).
 */
function insertIntoPackage(text: string, body: string): string {
  const block = `${START}\n${body}\n${END}`;
  const heading = /^#{2,3} Performance[^\n]*\n/m.exec(text);
  if (heading === null) return `${text.trimEnd()}\n\n## Performance\n\n${block}\n`;
  const sectionStart = heading.index + heading[0].length;
  const level = heading[0].startsWith("### ") ? 3 : 2;
  const next = new RegExp(`^#{1,${level}} `, "m").exec(text.slice(sectionStart));
  const sectionEnd = next === null ? text.length : sectionStart + next.index;
  const paragraphs = text
    .slice(sectionStart, sectionEnd)
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      // Prose only (code blocks, lists and tables are kept as they are).
      if (/^(```|[-*|>]|\d+\.)/.test(p)) return p;
      const sentences = p.replace(/\s*\n\s*/g, " ").split(/(?<=\.)\s+(?=[A-Z`])/);
      const kept = sentences.filter((s) => !PLACEHOLDER.test(s));
      return kept.length === sentences.length ? p : wrap(kept.join(" "));
    })
    .filter(Boolean);
  const section = [...paragraphs, block].join("\n\n");
  return `${text.slice(0, sectionStart)}\n${section}\n${next === null ? "" : "\n"}${text.slice(sectionEnd)}`;
}

/** Command line: `--from <file>` (default results/latest.json), `--only <name,...>` (README.md targets: `root` and/or package names). */
function parseArgs(argv: readonly string[]): { file: string; only: Set<string> | undefined } {
  let file = join(here, "results", "latest.json");
  let only: Set<string> | undefined;
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === "--from" && value !== undefined) file = argv[++i] as string;
    else if (argv[i] === "--only" && value !== undefined) only = new Set((argv[++i] as string).split(","));
    else throw new Error(`unknown argument ${argv[i]} (known: --from <file>, --only <root,queue,...>)`);
  }
  return { file, only };
}

/** Writes `body` between the markers of a package README (placing them on the first write). */
function writePackage(pkg: string, body: string | undefined): void {
  const path = join(root, "packages", pkg, "README.md");
  if (!existsSync(path) || body === undefined) return;
  const current = readFileSync(path, "utf8");
  const next = replaceBetween(current, body) ?? insertIntoPackage(current, body);
  if (next !== current) writeFileSync(path, next);
  process.stderr.write(`wrote the benchmark table of ${path}\n`);
}

function main(): number {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const { file, only } = args;
  if (!existsSync(file)) {
    process.stderr.write(`${file} does not exist: run \`npm run bench\` first\n`);
    return 1;
  }
  const report = JSON.parse(readFileSync(file, "utf8")) as BenchReport;
  const wanted = (name: string) => only === undefined || only.has(name);

  if (wanted("root")) {
    const readme = join(root, "README.md");
    const text = readFileSync(readme, "utf8");
    const body = rootSection(report);
    const updated = replaceBetween(text, body) ?? `${text.trimEnd()}\n\n${START}\n${body}\n${END}\n`;
    writeFileSync(readme, updated);
    process.stderr.write(`wrote the Performance section of ${readme}\n`);
  }
  for (const [pkg, prefixes] of Object.entries(PACKAGES)) {
    if (wanted(pkg)) writePackage(pkg, packageSection(report, prefixes));
  }
  if (wanted("queue")) writePackage("queue", queueSection(report));
  return 0;
}

process.exitCode = main();
