import { performance } from "node:perf_hooks";
import {
  describeSchedule,
  type FaultKind,
  type FaultProxy,
  type FaultSchedule,
  type FaultStep,
  faultSchedule,
  mulberry32,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
} from "@coordis/testing";
import { scenarioResult } from "../lib/result.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";
import { FencedLockWorkers, RECOVERY_SECTIONS } from "./fenced-lock.js";

/** Worker processes contending for the lock in lock-mutex and lock-redlock. */
export const LOCK_WORKERS = 8;
/** Lease TTL, ms: short, so every pause of a worker (600–1500 ms) outlasts it. */
const TTL_MS = 500;
/** Faults last this long, ms: a SIGSTOPped worker is always paused past its TTL. */
const LOCK_FAULT_MS: [number, number] = [TTL_MS + 100, TTL_MS * 3];
/**
 * Each critical section "works" 0..HOLD_MAX_MS ms between its fenced read and its fenced write: short, so the full
 * run makes well over 10,000 acquisitions.
 */
const HOLD_MAX_MS = 10;
/** After the faults, accepted sections must resume within this time, ms. */
const RECOVERY_MS = 10_000;
/**
 * A holder is stalled in its critical section (SIGSTOP after its fenced read) for this long, ms: at least two TTLs, so
 * another worker has the lock and has read with a higher fence when the stalled one writes.
 */
const HOLDER_STALL_MS: [number, number] = [TTL_MS * 2, TTL_MS * 3];

/**
 * Keeps at most one server down at a time, so a majority of Redlock's masters always keeps its data (the README's
 * stated tolerance), and makes every killed master stay down ≥ one TTL + 100 ms (its "delayed restart"). Steps are
 * dropped or lengthened, never moved, so the schedule stays a pure function of the seed.
 */
function oneServerDownAtATime(schedule: FaultSchedule): FaultSchedule {
  const kept: FaultStep[] = [];
  let downUntil = -1;
  for (const original of schedule.steps) {
    let step = original;
    if (step.target === "server" && step.fault === "kill") {
      if (step.atMs < downUntil) continue;
      step = { ...step, durationMs: Math.max(step.durationMs, TTL_MS + 100) };
      downUntil = step.atMs + step.durationMs + 500;
    }
    kept.push(step);
  }
  return faultSchedule({ seed: schedule.seed, steps: kept });
}

interface LockScenarioOptions {
  mode: "mutex" | "redlock";
  name: string;
  description: string;
}

function lockScenario({ mode, name, description }: LockScenarioOptions): ChaosScenario {
  return {
    name,
    description,
    // About 40 acquisitions a second under these faults on 2 shared cores: 5 minutes make > 10,000.
    defaultDurationMs: 300_000,
    run: (context) => runLockScenario(mode, name, context),
  };
}

async function runLockScenario(
  mode: "mutex" | "redlock",
  scenario: string,
  { seed, durationMs, log }: ScenarioContext,
): Promise<ScenarioResult> {
  const started = performance.now();
  const masters = mode === "mutex" ? 1 : 3;
  const meanIntervalMs = Math.min(1_500, Math.max(300, Math.round(durationMs / 12)));
  // Mutex: one server with AOF and appendfsync always, so kill/restart loses no acknowledged write (the README's
  // condition for fences to survive restarts); a proxy per worker partitions single clients.
  // Redlock: three masters without persistence, a proxy per master (shared by all workers) partitions a master;
  // at most one master is down at a time and each stays down longer than a TTL.
  const faults: FaultKind[] =
    mode === "mutex"
      ? ["pause", "kill", "restart", "latency", "drop", "blackhole"]
      : ["pause", "kill", "latency", "drop", "blackhole"];
  const proxiesCount = mode === "mutex" ? LOCK_WORKERS : masters;
  let schedule = faultSchedule({
    seed,
    generate: {
      durationMs,
      faults,
      meanIntervalMs,
      targets: { servers: masters, proxies: proxiesCount, processes: LOCK_WORKERS },
      faultMs: LOCK_FAULT_MS,
      latencyMs: [5, 60],
    },
  });
  if (mode === "redlock") schedule = oneServerDownAtATime(schedule);
  log(describeSchedule(schedule));

  const violations = new Violations();
  const servers: RedisServer[] = [];
  const proxies: FaultProxy[] = [];
  const prefix = testPrefix();
  // The processes load while the servers start.
  const lock = new FencedLockWorkers(LOCK_WORKERS, violations);
  try {
    // AOF with appendfsync always on every master: fences must be remembered across restarts (packages/lock
    // README, "Redlock and lost data"); without it a restarted master plus a partitioned one can let a fence go back.
    servers.push(
      ...(await Promise.all(
        Array.from({ length: masters }, () =>
          startRedis({ appendOnly: true, config: { appendfsync: "always" }, leastPrivilege: true }),
        ),
      )),
    );
    proxies.push(
      ...(await Promise.all(
        Array.from({ length: proxiesCount }, (_, i) =>
          startProxy({ target: servers[mode === "mutex" ? 0 : i] as RedisServer, seed: seed + i }),
        ),
      )),
    );
    await lock.start((slot, incarnation) => ({
      mode,
      urls: mode === "mutex" ? [(proxies[slot] as FaultProxy).url] : proxies.map((p) => p.url),
      prefix,
      name: "chaos-lock",
      ttlMs: TTL_MS,
      waitMs: 2_000,
      holdMaxMs: HOLD_MAX_MS,
      commandTimeoutMs: 400,
      nodeTimeoutMs: 200,
      seed: (seed + slot * 7919 + incarnation * 104729) >>> 0,
    }));

    // Besides the schedule's faults, a holder is stalled past its lease at most once every sixth of the run (every
    // 0.5 s in the short run, 2 s in the long one).
    lock.stallHolders({
      everyMs: Math.min(2_000, Math.max(500, Math.round(durationMs / 6))),
      pauseMs: HOLDER_STALL_MS,
      random: mulberry32(seed ^ 0x57a11),
    });
    const faultLog = await runSchedule(
      schedule,
      { servers, proxies, processes: lock.pool.processes },
      { onInject: lock.pool.respawnKilled },
    );
    lock.stallHolders(undefined);
    log(
      `faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep; ${lock.holderStalls} holders stalled past their lease`,
    );

    // Liveness: once healed, accepted sections resume (a fence that went back would leave every write rejected).
    await lock.progress(RECOVERY_SECTIONS, RECOVERY_MS, "the faults were healed");
    const { operations, details } = await lock.finish();
    return scenarioResult(started, violations, {
      scenario,
      operations,
      faultsInjected: faultLog.injected,
      seed,
      details: {
        ...details,
        workers: LOCK_WORKERS,
        pauseMs: LOCK_FAULT_MS,
        holderStallMs: HOLDER_STALL_MS,
        holdMaxMs: HOLD_MAX_MS,
        ttlMs: TTL_MS,
        masters,
        persistence:
          mode === "mutex"
            ? "appendonly, appendfsync always"
            : "appendonly, appendfsync always; one master down at a time",
        faultsByKind: faultLog.byKind,
        faultErrors: faultLog.entries.filter((e) => e.error !== undefined).map((e) => e.error),
        durationMs,
      },
    });
  } finally {
    await lock.pool.stop(0);
    await Promise.all(proxies.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** Lock checker on a single Redis with AOF: Mutex. */
export const lockMutex = lockScenario({
  mode: "mutex",
  name: "lock-mutex",
  description:
    "8 worker processes, Mutex + fenced register; pause workers past TTL (600-1500 ms > 500 ms), kill/restart Redis (AOF always), partition clients",
});

/** Lock checker over 3 masters: Redlock. */
export const lockRedlock = lockScenario({
  mode: "redlock",
  name: "lock-redlock",
  description:
    "8 worker processes, Redlock over 3 masters + fenced register; pause workers past TTL, kill one master at a time, partition masters",
});
