import type { BenchReport, ScenarioResult } from "./harness.js";

/** Integer with thousands separators, or "—". */
export const int = (v: number | undefined) => (v === undefined ? "—" : Math.round(v).toLocaleString("en-US"));
/** A ratio as `1.23×`, or "—". */
export const ratio = (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(2)}×`);
/** Milliseconds, 3 decimals below 1 ms, or "—". */
export const ms = (v: number | undefined) => (v === undefined ? "—" : v < 1 ? v.toFixed(3) : v.toFixed(2));
/** Microseconds of CPU, 1 decimal, or "—". */
export const us = (v: number | undefined) => (v === undefined ? "—" : v.toFixed(1));

/**
 * Measured round trips per operation with the declared figure: `1.00 (= 1)` exact, `0.03 (≤ 1)` a ceiling
 * (micro-batched rows), bold when broken.
 */
export function roundTrips(r: ScenarioResult): string {
  const rt = r.roundTrips;
  if (rt === undefined) return "—";
  const measured = rt.perOp.toFixed(2);
  if (rt.declared === undefined) return measured;
  if (rt.perOp > rt.declared) return `**${measured} > ${rt.declared}**`;
  return rt.bound === "at-most" ? `${measured} (≤ ${rt.declared})` : `${measured} (= ${rt.declared})`;
}

/** Bytes of Redis memory per entity, or "—". */
export function memory(r: ScenarioResult): string {
  return r.memory === undefined ? "—" : `${r.memory.bytesPerEntity} B/${r.memory.entity}`;
}

/** Throughput with its unit when not plain operations (`cycles`, `jobs`). */
export function throughput(r: ScenarioResult): string {
  const unit = r.unit === "ops" ? "" : ` ${r.unit}`;
  return `${int(r.opsPerSec)}${r.opsPerSec === undefined ? "" : unit}`;
}

/** "× ref" cell: the ratio and the row it divides by. */
export function refCell(r: ScenarioResult, byId: ReadonlyMap<string, ScenarioResult>): string {
  if (r.refRatio === undefined) return "—";
  return `${ratio(r.refRatio)} (vs ${byId.get(r.reference ?? "")?.name ?? r.reference})`;
}

function status(r: ScenarioResult): string {
  if (r.status === "unavailable") return "not available yet";
  if (r.status === "failed") return `FAILED: ${(r.error ?? "").replaceAll("|", "/").slice(0, 120)}`;
  return "ok";
}

/**
 * The Markdown report: one table per group. "× raw" divides by the group's raw row in the same round (median
 * over rounds); "× ref" by the row named in the JSON's `reference`; "× floor" by raw EVALSHA.
 */
export function markdown(report: BenchReport): string {
  const out: string[] = [];
  const m = report.machine;
  out.push(`## Coordis benchmark — ${report.date}`);
  out.push("");
  out.push(
    `${m.cpuCount} × ${m.cpuModel}, Node ${report.versions.node}, Redis ${report.versions.redis}, ioredis ` +
      `${report.versions.ioredis}; ${report.options.rounds} round(s) × ${report.options.durationMs} ms at ` +
      `${report.options.concurrency} in flight + ${report.options.sequentialMs} ms sequential; load average ` +
      `${m.loadAverageStart[0]} → ${m.loadAverageEnd[0]}; run took ${Math.round(report.durationSec)} s` +
      (report.options.smoke ? " (smoke)" : ""),
  );
  const groups = [...new Set(report.scenarios.map((s) => s.group))];
  const byId = new Map(report.scenarios.map((s) => [s.id, s]));
  for (const group of groups) {
    const rows = report.scenarios.filter((s) => s.group === group);
    out.push("");
    out.push(`### ${group}`);
    out.push("");
    const c = report.options.concurrency;
    out.push(
      `| scenario | ops/s | × raw | × ref | × floor | p50 ms | p99 ms | p50 × raw | p50 ms @${c} | p99 ms @${c} | ` +
        "round trips/op | client CPU µs/op | Redis CPU µs/op | script µs/op | memory | status |",
    );
    out.push("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for (const r of rows) {
      out.push(
        `| ${r.name} | ${throughput(r)} | ${r.baseline === undefined ? "base" : ratio(r.ratio)} | ${refCell(r, byId)} | ` +
          `${ratio(r.floorRatio)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ` +
          `${r.baseline === undefined ? "base" : ratio(r.p50Ratio)} | ${ms(r.inFlightP50Ms)} | ${ms(r.inFlightP99Ms)} | ` +
          `${roundTrips(r)} | ${us(r.clientCpuUsPerOp)} | ${us(r.redisCpuUsPerOp)} | ${us(r.scriptUsPerOp)} | ` +
          `${memory(r)} | ${status(r)} |`,
      );
    }
  }
  const unavailable = report.scenarios.filter((s) => s.status === "unavailable");
  if (unavailable.length > 0) {
    out.push("");
    out.push("Not available yet (skipped):");
    for (const s of unavailable) out.push(`- ${s.id}: ${s.note ?? ""}`);
  }
  const failed = report.scenarios.filter((s) => s.status === "failed");
  if (failed.length > 0) {
    out.push("");
    out.push("Failed:");
    for (const s of failed) out.push(`- ${s.id}: ${s.error ?? ""}`);
  }
  if (report.roundTripViolations.length > 0) {
    out.push("");
    out.push("**ROUND-TRIP CONTRACT BROKEN:**");
    for (const v of report.roundTripViolations) {
      out.push(`- ${v.id}: measured ${v.measured} round trips/op, declared ${v.declared}`);
    }
  }
  return `${out.join("\n")}\n`;
}
