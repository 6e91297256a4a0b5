import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import {
  mulberry32,
  type RedisSentinelSetup,
  type RedisServer,
  startRedisSentinel,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import { scenarioResult } from "../lib/result.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";
import { FencedLockWorkers, RECOVERY_SECTIONS } from "./fenced-lock.js";

/** Worker processes contending for the lock. */
const WORKERS = 4;
/** Lease TTL, ms. */
const TTL_MS = 1_000;
/** The lock's durability setting: one replica must acknowledge every acquisition and extension. */
const DURABILITY = { replicas: 1, timeoutMs: 300 } as const;
/** Pause between a failover having settled (the old primary back as a synced replica) and the next kill, ms. */
const BETWEEN_KILLS_MS: [number, number] = [1_500, 4_000];
/**
 * The first kill comes once the workers have had RECOVERY_SECTIONS sections accepted on the first primary, then after
 * 0..FIRST_KILL_MS more, so it lands anywhere in an acquisition.
 */
const FIRST_KILL_MS = 500;
/** Accepted sections must come within this time after the workers started and after each failover, ms. */
const RECOVERY_MS = 20_000;

/**
 * Failover checker: 4 worker processes acquire one Mutex with `durability: { replicas: 1 }` through Sentinel and do
 * fenced read-modify-writes on the parent's register, while the primary is SIGKILLed over and over (Sentinel
 * promotes a replica; the killed server restarts empty and Sentinel turns it into a replica of the new primary before
 * the next kill). The run ends once sections are accepted again after the first failover that ends past
 * `durationMs`. Checked (as lock-mutex): fences never go back and are never handed out twice, accepted sections never
 * overlap, no two leases valid at once, no lost update, progress after every failover.
 */
async function runFailoverScenario({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const random = mulberry32(seed);
  const violations = new Violations();
  const failovers: Array<{ from: number; to: number; ms: number }> = [];
  const prefix = testPrefix();
  let setup: RedisSentinelSetup | undefined;
  // The processes load while Sentinel and its servers start.
  const lock = new FencedLockWorkers(WORKERS, violations);
  try {
    setup = await startRedisSentinel({ replicas: 2, downAfterMs: 1_000, leastPrivilege: true });
    const s = setup;
    await lock.start((slot) => ({
      mode: "mutex",
      urls: [s.url],
      prefix,
      name: "failover-lock",
      ttlMs: TTL_MS,
      waitMs: 3_000,
      holdMaxMs: 20,
      commandTimeoutMs: 1_500,
      nodeTimeoutMs: 200,
      seed: (seed + slot * 7919) >>> 0,
      durability: DURABILITY,
    }));
    log(`workers ready after ${Math.round(performance.now() - started)} ms`);

    await lock.progress(RECOVERY_SECTIONS, RECOVERY_MS, "the workers started");
    await sleep(random() * FIRST_KILL_MS);
    const end = performance.now() + durationMs;
    for (;;) {
      const primary = await s.currentMaster();
      const killedAt = performance.now();
      await primary.kill();
      const promoted = await s.waitForFailover(primary);
      failovers.push({ from: primary.port, to: promoted.port, ms: Math.round(performance.now() - killedAt) });
      log(
        `failover ${failovers.length}: ${primary.port} -> ${promoted.port} in ${Math.round(performance.now() - killedAt)} ms`,
      );
      // Writes resume on the promoted replica with fences that never go back.
      await lock.progress(RECOVERY_SECTIONS, RECOVERY_MS, `failover ${failovers.length}`);
      if (performance.now() >= end) break;
      // The killed server comes back empty; Sentinel makes it a replica of the new primary (two replicas again).
      await primary.restart();
      await waitForReplicaOf(s, primary, 60_000);
      await sleep(BETWEEN_KILLS_MS[0] + random() * (BETWEEN_KILLS_MS[1] - BETWEEN_KILLS_MS[0]));
    }

    const { operations, details } = await lock.finish();
    return scenarioResult(started, violations, {
      scenario: "lock-failover",
      operations,
      faultsInjected: failovers.length,
      seed,
      details: {
        ...details,
        failovers,
        workers: WORKERS,
        ttlMs: TTL_MS,
        durability: DURABILITY,
        topology: "Sentinel (quorum 1, down-after 1 s), primary + 2 replicas, no persistence",
        durationMs,
      },
    });
  } finally {
    await lock.pool.stop(0);
    await setup?.stop();
  }
}

/** Waits until `server` replicates from the current primary with its link up. */
async function waitForReplicaOf(s: RedisSentinelSetup, server: RedisServer, timeoutMs: number): Promise<void> {
  const endAt = performance.now() + timeoutMs;
  const rejoined = await tryWaitUntil(
    async () => {
      const primary = await s.currentMaster().catch(() => undefined);
      if (primary === undefined || primary === server) return false;
      // A failure means not converted yet (Sentinel looks at a returning instance every few seconds).
      const wait = Math.max(1, Math.min(2_000, endAt - performance.now()));
      return s.waitForReplica(server, wait).then(
        () => true,
        () => false,
      );
    },
    { timeoutMs, intervalMs: 100 },
  );
  if (!rejoined) throw new Error(`port ${server.port} did not rejoin as a replica in ${timeoutMs} ms`);
}

/** Failover checker with the durability setting: fences never go back across Sentinel failovers. */
export const lockFailover: ChaosScenario = {
  name: "lock-failover",
  description:
    "4 worker processes, Mutex with durability { replicas: 1 } through Sentinel + fenced register; SIGKILL the primary again and again (promotion, old primary rejoins empty as a replica)",
  defaultDurationMs: 120_000,
  run: runFailoverScenario,
};
