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
import {
  type ChaosWorker,
  reply,
  spawnWorker,
  stopWorkers,
  Violations,
  type WorkerMessage,
  waitReady,
} from "../lib/workers.js";
import type { ChaosScenario, ScenarioContext, ScenarioResult } from "../scenario.js";
import { type Acquisition, checkLockHistory, FencedRegister, RECOVERY_SECTIONS } from "./lock.js";

/** Worker processes contending for the lock. */
const WORKERS = 4;
/** Lease TTL, ms. */
const TTL_MS = 1_000;
/** The lock's durability setting: one replica must acknowledge every acquisition and extension. */
const DURABILITY = { replicas: 1, timeoutMs: 300 } as const;
/** Pause between a failover having settled (the old primary back as a synced replica) and the next kill, ms. */
const BETWEEN_KILLS_MS: [number, number] = [1_500, 4_000];
/** After the last failover, accepted sections must resume within this time, ms. */
const RECOVERY_MS = 20_000;

/**
 * Failover checker: 4 worker processes acquire one Mutex with `durability: { replicas: 1 }` through Sentinel and do
 * fenced read-modify-writes on the parent's register, while the primary is SIGKILLed over and over (Sentinel
 * promotes a replica; the killed server restarts empty and Sentinel turns it into a replica of the new primary).
 * Checked (as lock-mutex): fences never go back and are never handed out twice, accepted sections never overlap, no
 * two leases valid at once, no lost update, progress after the last failover.
 */
async function runFailoverScenario({ seed, durationMs, log }: ScenarioContext): Promise<ScenarioResult> {
  const started = performance.now();
  const random = mulberry32(seed);
  const violations = new Violations();
  const register = new FencedRegister();
  const acquisitions = new Map<string, Acquisition>();
  const acquireFailed: Record<string, number> = {};
  const workers: ChaosWorker[] = [];
  const failovers: Array<{ from: number; to: number; ms: number }> = [];
  const prefix = testPrefix();
  let setup: RedisSentinelSetup | undefined;
  let crashes = 0;
  try {
    setup = await startRedisSentinel({ replicas: 2, downAfterMs: 1_000, leastPrivilege: true });
    const s = setup;
    let ready = 0;
    const onMessage = (msg: WorkerMessage, worker: ChaosWorker) => {
      const id = `w${worker.slot}`;
      switch (msg.type) {
        case "ready":
          ready++;
          break;
        case "acquire-failed":
          acquireFailed[msg.code as string] = (acquireFailed[msg.code as string] ?? 0) + 1;
          break;
        case "acquired":
          acquisitions.set(`${id}/${msg.fence}`, {
            worker: id,
            fence: msg.fence as number,
            reqAt: msg.reqAt as number,
            gotAt: msg.gotAt as number,
            validUntil: msg.validUntil as number,
            releaseAt: undefined,
          });
          break;
        case "releasing":
        case "released": {
          const a = acquisitions.get(`${id}/${msg.fence}`);
          if (a !== undefined) a.releaseAt ??= msg.releaseAt as number;
          break;
        }
        case "begin":
          reply(worker, msg, register.begin(id, msg.fence as number));
          break;
        case "end":
          reply(worker, msg, { accepted: register.end(id, msg.fence as number, msg.value as number) });
          break;
      }
    };
    for (let slot = 0; slot < WORKERS; slot++) {
      const config = {
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
      };
      const w = spawnWorker("lock-worker.ts", slot, [JSON.stringify(config)], onMessage);
      w.child.once("exit", (code, signal) => {
        if (signal === null && code !== 0) {
          crashes++;
          violations.add("worker-crash", `worker ${slot} exited with code ${code}: ${w.stderr().slice(-600)}`);
        }
      });
      workers.push(w);
    }
    await waitReady(workers, () => ready);

    const end = performance.now() + durationMs;
    do {
      await sleep(BETWEEN_KILLS_MS[0] + random() * (BETWEEN_KILLS_MS[1] - BETWEEN_KILLS_MS[0]));
      const primary = await s.currentMaster();
      const killedAt = performance.now();
      await primary.kill();
      const promoted = await s.waitForFailover(primary);
      failovers.push({ from: primary.port, to: promoted.port, ms: Math.round(performance.now() - killedAt) });
      log(
        `failover ${failovers.length}: ${primary.port} -> ${promoted.port} in ${Math.round(performance.now() - killedAt)} ms`,
      );
      // The killed server comes back empty; Sentinel makes it a replica of the new primary (two replicas again).
      await primary.restart();
      await waitForReplicaOf(s, primary, 60_000);
    } while (performance.now() < end);

    const before = register.writes;
    if (!(await tryWaitUntil(() => register.writes >= before + RECOVERY_SECTIONS, RECOVERY_MS))) {
      violations.add(
        "no-progress",
        `only ${register.writes - before} accepted sections within ${RECOVERY_MS} ms after the last failover`,
      );
    }
    await stopWorkers(workers);
    const history = [...acquisitions.values()];
    const summary = checkLockHistory(register, history, violations);
    return {
      scenario: "lock-failover",
      operations: history.length + Object.values(acquireFailed).reduce((n, c) => n + c, 0),
      faultsInjected: failovers.length,
      violations: violations.count,
      seed,
      elapsedMs: Math.round(performance.now() - started),
      details: {
        acquisitions: history.length,
        acquireFailed,
        ...summary,
        registerFence: register.maxSeen,
        violationsByKind: violations.byKind,
        failovers,
        workers: WORKERS,
        crashes,
        ttlMs: TTL_MS,
        durability: DURABILITY,
        topology: "Sentinel (quorum 1, down-after 1 s), primary + 2 replicas, no persistence",
        durationMs,
      },
      samples: violations.samples,
    };
  } finally {
    await stopWorkers(workers, 0);
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
