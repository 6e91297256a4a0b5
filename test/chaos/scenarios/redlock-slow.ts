import { performance } from "node:perf_hooks";
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
import { reply, Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";

// Redlock extension while masters are merely slow: paused for less than the lease.

/** Worker processes, each holding Redlocks of its own name. */
const WORKERS = 4;
/** Lease TTL of the extension checker, ms: auto-extension every 400 ms. */
const SLOW_TTL_MS = 1_200;
/** Masters are paused this long, ms: longer than nodeTimeoutMs, well within a lease. */
const SLOW_PAUSE_MS: [number, number] = [150, 500];
/** Each lease is held this long, ms (several auto-extensions). */
const SLOW_HOLD_MS: [number, number] = [700, 1_800];

async function runRedlockSlowScenario({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const schedule = faultSchedule({
    seed,
    generate: {
      durationMs,
      faults: ["pause"],
      meanIntervalMs: 200,
      targets: { servers: 3, proxies: 0, processes: 0 },
      faultMs: SLOW_PAUSE_MS,
    },
  });
  log(describeSchedule(schedule));
  const violations = new Violations();
  const outcomes: Record<string, number> = {};
  const losses: Array<{ reason: string; holders: number }> = [];
  const servers: RedisServer[] = [];
  const admins: ReturnType<RedisServer["adminClient"]>[] = [];
  const prefix = testPrefix();
  const quorum = 2;
  let leasesAfterHeal = -1;
  // The processes load while the servers start.
  const pool = new WorkerPool({
    file: "lock-extend-worker.ts",
    count: WORKERS,
    crashes: violations,
    onMessage(msg, worker) {
      if (msg.type === "lease") {
        outcomes[msg.outcome as string] = (outcomes[msg.outcome as string] ?? 0) + 1;
        if (leasesAfterHeal >= 0) leasesAfterHeal++;
      } else if (msg.type === "lost") {
        // The worker waits for this reply before it releases: count the masters still holding its token (a read
        // on a paused master waits for it to resume).
        const key = `${prefix}:lock:{${msg.name as string}}`;
        Promise.all(admins.map((a) => a.get(key).catch(() => null))).then((values) => {
          const holders = values.filter((v) => v === msg.token).length;
          losses.push({ reason: msg.reason as string, holders });
          if (msg.reason === "not-held" && holders >= quorum) {
            violations.add(
              "false-loss",
              `w${worker.slot}: lease (fence ${msg.fence as number}) reported lost (not-held) while ${holders} of 3 masters held its token`,
            );
          }
          reply(worker, msg, {});
        });
      }
    },
  });
  try {
    servers.push(...(await Promise.all([0, 1, 2].map(() => startRedis({ leastPrivilege: true })))));
    for (const s of servers) admins.push(s.adminClient({ commandTimeoutMs: 10_000 }));
    await pool.start((slot) => ({
      urls: servers.map((s) => s.url),
      prefix,
      name: `slow-${slot}`,
      ttlMs: SLOW_TTL_MS,
      nodeTimeoutMs: 100,
      holdMs: SLOW_HOLD_MS,
      commandTimeoutMs: 5_000,
      seed: (seed + slot * 7919) >>> 0,
    }));
    log(`workers ready after ${Math.round(performance.now() - started)} ms`);
    const faultLog = await runSchedule(schedule, { servers, proxies: [], processes: [] });
    log(`faults done: ${faultLog.injected} injected, ${faultLog.repaired} repaired by the final sweep`);
    leasesAfterHeal = 0;
    if (!(await tryWaitUntil(() => leasesAfterHeal >= WORKERS, 15_000))) {
      violations.add(
        "no-progress",
        `only ${leasesAfterHeal} leases completed within 15 s after the faults were healed`,
      );
    }
    log(`${leasesAfterHeal} leases after the heal; stopping workers`);
    await pool.stop();
    const leases = Object.values(outcomes).reduce((n, c) => n + c, 0);
    return scenarioResult(started, violations, {
      scenario: "lock-redlock-slow",
      operations: leases,
      faultsInjected: faultLog.injected,
      seed,
      details: {
        outcomes,
        losses: losses.length,
        lossesWithTokenOnQuorum: losses.filter((l) => l.holders >= quorum).length,
        workers: WORKERS,
        crashes: pool.crashes,
        ttlMs: SLOW_TTL_MS,
        pauseMs: SLOW_PAUSE_MS,
        faultsByKind: faultLog.byKind,
        durationMs,
      },
    });
  } finally {
    await pool.stop(0);
    for (const a of admins) a.disconnect();
    for (const s of servers) await s.stop();
  }
}

/** Redlock extension checker: masters paused for less than a lease must not make a held lease look lost. */
export const lockRedlockSlow: ChaosScenario = {
  name: "lock-redlock-slow",
  description:
    "4 workers hold Redlocks (ttl 1.2 s) with using() + auto-extension over 3 masters paused 150-500 ms; no lease reported lost while a quorum held its token",
  defaultDurationMs: 60_000,
  run: runRedlockSlowScenario,
};
