import type { Violations } from "../lib/workers.js";

/** One run of a tick's fn, as the replica that ran it reported it (wall-clock ms of this machine). */
export interface TickRun {
  worker: string;
  job: "once" | "retry";
  tick: number;
  fence: number;
  /** When fn started and stopped, and when runOncePerTick returned or threw. */
  startAt: number;
  stopAt: number;
  returnedAt: number;
  /** ok (recorded), lost (LeaseLostError: fn returned but the tick was no longer held), aborted (fn stopped on its signal), finish-failed. */
  outcome: string;
}

/** One entry of a job's history (what `tickHistory` returns). */
export interface TickHistoryEntry {
  tick: number;
  fence: number;
  ok: boolean;
}

/**
 * The runOncePerTick checker. `once` (no retryOnError, fn stops when its signal aborts): a tick's fn never runs
 * twice — a second run is allowed only when it started more than recordTtlMs / 2 after every earlier run of the tick
 * stopped (a replica arriving after the record's documented lifetime; half of it is kept as margin for pauses).
 * Both jobs: a run that reported `ok` really held the tick throughout (no later claim of the tick started before
 * it returned) and is in the history with its fence; a run that reported its tick lost is not in the history.
 */
export function checkTickHistory(
  runs: readonly TickRun[],
  history: Readonly<Record<string, readonly TickHistoryEntry[]>>,
  recordTtlMs: number,
  violations: Violations,
): { ticks: number; runs: number; lateReruns: number; outcomes: Record<string, number> } {
  const groups = new Map<string, TickRun[]>();
  const outcomes: Record<string, number> = {};
  for (const r of runs) {
    const key = `${r.job}/${r.tick}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
    outcomes[`${r.job}:${r.outcome}`] = (outcomes[`${r.job}:${r.outcome}`] ?? 0) + 1;
  }
  let lateReruns = 0;
  for (const [key, group] of groups) {
    group.sort((a, b) => a.startAt - b.startAt);
    if (key.startsWith("once/")) {
      let lastStop = Number.NEGATIVE_INFINITY;
      let last: TickRun | undefined;
      for (const r of group) {
        if (last !== undefined) {
          if (r.startAt < lastStop + recordTtlMs / 2) {
            violations.add(
              "tick-twice",
              `tick ${key} ran on ${last.worker} (fence ${last.fence}, ${last.startAt}..${last.stopAt}) and again on ${r.worker} (fence ${r.fence}) from ${r.startAt}`,
            );
          } else lateReruns++;
        }
        if (r.stopAt > lastStop) {
          lastStop = r.stopAt;
          last = r;
        }
      }
    }
    const recorded = history[key.split("/")[0] as string] ?? [];
    for (const a of group) {
      const inHistory = recorded.find((h) => h.fence === a.fence);
      if (a.outcome === "ok") {
        const later = group.find((b) => b.fence > a.fence && b.startAt < a.returnedAt);
        if (later !== undefined) {
          violations.add(
            "ok-not-held",
            `tick ${key}: ${a.worker} (fence ${a.fence}) reported ok at ${a.returnedAt}, but ${later.worker} claimed it (fence ${later.fence}) and started at ${later.startAt}`,
          );
        }
        if (inHistory?.ok !== true) {
          violations.add(
            "ok-not-recorded",
            `tick ${key}: ${a.worker} (fence ${a.fence}) reported ok, history has no ok entry`,
          );
        }
      } else if (a.outcome === "lost" && inHistory !== undefined) {
        violations.add(
          "lost-recorded",
          `tick ${key}: ${a.worker} (fence ${a.fence}) reported its tick lost, yet it is recorded`,
        );
      }
    }
  }
  return { ticks: groups.size, runs: runs.length, lateReruns, outcomes };
}
