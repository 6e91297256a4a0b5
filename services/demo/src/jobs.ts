import type { CoordisObserver, RedisClient } from "@coordis/core";
import { runOncePerTick, type TickContext, type TickRecord, tickHistory } from "@coordis/lock";

/** A cron-style job every replica schedules; `runOncePerTick` lets exactly one replica run each tick. */
export interface JobSpec {
  /** Job name (also its lock name). */
  name: string;
  /** Period in ms; ticks are multiples of it (epoch ms), so every replica computes the same tick. */
  everyMs: number;
  run(ctx: TickContext): Promise<unknown>;
}

/** A finished run, as the dashboard shows it. */
export interface JobRun extends TickRecord {
  job: string;
}

/** Names of the demo's jobs. */
export const JOB_NAMES = ["snapshot-top10", "rollup-stats"] as const;

/**
 * Schedules `jobs` on this replica: at each tick boundary (plus a little random jitter, so different replicas win
 * different ticks) it calls `runOncePerTick`, which runs the job on the first replica to claim the tick only.
 * Returns a stop function.
 */
export function scheduleJobs(
  redis: RedisClient,
  jobs: JobSpec[],
  options: { owner: string; prefix: string; observer: CoordisObserver; onError: (job: string, err: unknown) => void },
): () => void {
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const arm = (job: JobSpec) => {
    const now = Date.now();
    const tick = Math.floor(now / job.everyMs) * job.everyMs + job.everyMs;
    const jitter = Math.floor(Math.random() * Math.min(250, job.everyMs / 4));
    const timer = setTimeout(
      async () => {
        timers.delete(timer);
        if (stopped) return;
        arm(job);
        try {
          await runOncePerTick(redis, job.name, tick, (ctx) => job.run(ctx), {
            owner: options.owner,
            prefix: options.prefix,
            observer: options.observer,
            ttlMs: Math.max(1_000, Math.min(30_000, job.everyMs)),
            recordTtlMs: Math.max(60_000, job.everyMs * 10),
          });
        } catch (err) {
          if (!stopped) options.onError(job.name, err);
        }
      },
      tick - now + jitter,
    );
    timers.add(timer);
  };
  for (const job of jobs) arm(job);
  return () => {
    stopped = true;
    for (const t of timers) clearTimeout(t);
    timers.clear();
  };
}

/** The newest runs of every demo job, newest first. */
export async function recentRuns(redis: RedisClient, prefix: string, limit = 10): Promise<JobRun[]> {
  const all = await Promise.all(
    JOB_NAMES.map(async (job) => (await tickHistory(redis, job, { prefix, limit })).map((r) => ({ ...r, job }))),
  );
  return all
    .flat()
    .sort((a, b) => b.endMs - a.endMs)
    .slice(0, limit);
}
