// Text helpers of `npm run bench:readme` (readme.ts): wrapping generated Markdown and the run's machine line.
import type { BenchReport } from "./harness.js";

/** Greedy wrap at `width` columns (README prose is wrapped at 120); continuation lines get `indent`. */
export function wrap(paragraph: string, width = 120, indent = ""): string {
  const lines: string[] = [];
  let line = "";
  for (const word of paragraph.split(/\s+/).filter(Boolean)) {
    if (line.trim() !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = `${indent}${word}`;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines.join("\n");
}

/** Wraps prose paragraphs and `- ` list items of generated Markdown; tables, headings and blank lines pass through. */
export function wrapMarkdown(lines: readonly string[]): string {
  return lines
    .map((l) => (l.startsWith("- ") ? wrap(l, 120, "  ") : l === "" || /^[|#]/.test(l) ? l : wrap(l)))
    .join("\n");
}

/** The run's date, machine, versions, options and load, as one sentence. */
export function machineLine(report: BenchReport): string {
  const m = report.machine;
  const o = report.options;
  return (
    `Run of ${report.date.slice(0, 16).replace("T", " ")} UTC on ${m.cpuCount} × ${m.cpuModel} ` +
    `(${Math.round(m.totalMemoryMB / 1024)} GB, ${m.platform} ${m.arch}), Node ${report.versions.node}, ` +
    `Redis ${report.versions.redis}, ioredis ${report.versions.ioredis}; ${o.rounds} interleaved round(s) of ` +
    `${o.durationMs} ms at ${o.concurrency} in flight + ${o.sequentialMs} ms with one caller; load average ` +
    `${m.loadAverageStart[0]} → ${m.loadAverageEnd[0]}${o.smoke ? " (smoke run: not a measurement)" : ""}` +
    `${o.filter === undefined ? "" : ` (filter ${o.filter})`}.`
  );
}
