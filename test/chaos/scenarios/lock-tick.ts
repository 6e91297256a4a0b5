import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { tickHistory } from "@coordis/lock";
import {
  describeSchedule,
  faultSchedule,
  type RedisServer,
  runSchedule,
  startRedis,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import { scenarioResult } from "../lib/result.js";
import { WorkerPool } from "../lib/worker-pool.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";
import { checkTickHistory, type TickHistoryEntry, type TickRun } from "./tick-check.js";

// runOncePerTick: replicas racing on ticks whose jobs outlast both the lease and the tick record's TTL.

/** Replicas (worker processes). */
const WORKERS = 4;
/** Lease TTL of a tick run, ms: pauses of workers and of Redis (up to TICK_PAUSE_MS[1]) outlast it. */
const TICK_TTL_MS = 300;
/** How long a tick record is kept after its run, ms (the smallest value runOncePerTick accepts). */
const TICK_RECORD_TTL_MS = 1_000;
/** A job lasts this long, ms: longer than the lease and than the record's TTL. */
const TICK_JOB_MS: [number, number] = [1_100, 1_500];
/** Each replica calls 0..TICK_SKEW_MS after a tick is announced: some arrive after the record's TTL, mid-run. */
const TICK_SKEW_MS = 1_800;
/** A new tick every TICK_EVERY_MS during the faulty phase. */
const TICK_EVERY_MS = 400;
/** Pauses of workers and of Redis, ms: longer than the lease, shorter than the record's TTL. */
const TICK_PAUSE_MS: [number, number] = [100, 500];

async function runTickScenario({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const schedule = faultSchedule({
    seed,
    generate: {
      durationMs,
      faults: ["pause"],
      meanIntervalMs: Math.min(800, Math.max(250, Math.round(durationMs / 12))),
      targets: { servers: 1, proxies: 0, processes: WORKERS },
      faultMs: TICK_PAUSE_MS,
    },
  });
  log(describeSchedule(schedule));
  const violations = new Violations();
  const runs: TickRun[] = [];
  let calls = 0;
  let callsDone = 0;
  const skipped: Record<string, number> = {};
  const prefix = testPrefix();
  let server: RedisServer | undefined;
  let ticker: NodeJS.Timeout | undefined;
  // The processes load while the server starts.
  const pool = new WorkerPool({
    file: "tick-worker.ts",
    count: WORKERS,
    crashes: violations,
    onMessage(msg, worker) {
      if (msg.type === "run") {
        callsDone++;
        runs.push({
          worker: `w${worker.slot}`,
          job: msg.job as TickRun["job"],
          tick: msg.tick as number,
          fence: msg.fence as number,
          startAt: msg.startAt as number,
          stopAt: msg.stopAt as number,
          returnedAt: msg.returnedAt as number,
          outcome: msg.outcome as string,
        });
      } else if (msg.type === "skipped") {
        callsDone++;
        skipped[msg.outcome as string] = (skipped[msg.outcome as string] ?? 0) + 1;
      }
    },
  });
  try {
    server = await startRedis({ leastPrivilege: true });
    const url = server.url;
    await pool.start((slot) => ({
      url,
      prefix,
      owner: `w${slot}`,
      ttlMs: TICK_TTL_MS,
      recordTtlMs: TICK_RECORD_TTL_MS,
      skewMaxMs: TICK_SKEW_MS,
      jobMs: TICK_JOB_MS,
      commandTimeoutMs: 3_000,
      seed: (seed + slot * 7919) >>> 0,
    }));

    // A job's history expires recordTtlMs after its last finish, so a quiet spell can drop older entries: read it
    // every 200 ms and keep every entry seen (each lives ≥ recordTtlMs after it was pushed).
    const client = server.client({ commandTimeoutMs: 10_000 });
    const seen: Record<string, Map<number, TickHistoryEntry>> = { once: new Map(), retry: new Map() };
    const readHistory = async () => {
      for (const job of ["once", "retry"] as const) {
        for (const h of await tickHistory(client, job, { prefix, limit: 10_000 })) {
          seen[job]?.set(h.fence, { tick: h.tick, fence: h.fence, ok: h.ok });
        }
      }
    };
    let polling = true;
    const poller = (async () => {
      while (polling) {
        await readHistory().catch(() => {});
        await sleep(200);
      }
    })();

    let tick = 0;
    const announce = () => {
      tick++;
      calls += 2 * WORKERS; // two jobs per replica
      for (const w of pool.all) w.send({ type: "tick", tick });
    };
    announce();
    ticker = setInterval(announce, TICK_EVERY_MS);
    const faultLog = await runSchedule(schedule, {
      servers: [server],
      proxies: [],
      processes: pool.processes,
    });
    clearInterval(ticker);
    log(`faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep; ${tick} ticks`);

    // Every call ends: skew + job + a few round trips after the last tick.
    const drainMs = TICK_SKEW_MS + TICK_JOB_MS[1] + 10_000;
    if (!(await tryWaitUntil(() => callsDone >= calls, drainMs))) {
      violations.add(
        "no-progress",
        `${calls - callsDone} of ${calls} calls still pending ${drainMs} ms after the last tick`,
      );
    }
    await pool.stop();
    polling = false;
    await poller;
    await readHistory();
    const history = { once: [...(seen.once?.values() ?? [])], retry: [...(seen.retry?.values() ?? [])] };
    const summary = checkTickHistory(runs, history, TICK_RECORD_TTL_MS, violations);
    if (summary.runs === 0) violations.add("no-progress", "no tick ran");
    return scenarioResult(started, violations, {
      scenario: "lock-tick",
      operations: calls,
      faultsInjected: faultLog.injected,
      seed,
      details: {
        ...summary,
        skipped,
        ticksAnnounced: tick,
        workers: WORKERS,
        ttlMs: TICK_TTL_MS,
        recordTtlMs: TICK_RECORD_TTL_MS,
        jobMs: TICK_JOB_MS,
        skewMs: TICK_SKEW_MS,
        faultsByKind: faultLog.byKind,
        durationMs,
      },
    });
  } finally {
    clearInterval(ticker);
    await pool.stop(0);
    await server?.stop();
  }
}

/** runOncePerTick checker: replicas racing on ticks with jobs longer than the lease and the record TTL. */
export const lockTick: ChaosScenario = {
  name: "lock-tick",
  description:
    "4 replicas run 2 jobs per tick with runOncePerTick (skewed up to 1.8 s, jobs 1.1-1.5 s > ttl 300 ms and record TTL 1 s); pause workers and Redis",
  defaultDurationMs: 60_000,
  run: runTickScenario,
};
