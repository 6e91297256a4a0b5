import { performance } from "node:perf_hooks";
import { Queue } from "@coordis/queue";
import {
  describeSchedule,
  type FaultSchedule,
  type FaultStep,
  faultSchedule,
  mulberry32,
  runSchedule,
  testPrefix,
  tryWaitUntil,
} from "@coordis/testing";
import { type DurableRedis, durableRedisSchedule, startDurableRedis } from "../lib/durable-redis.js";
import { produce } from "../lib/producers.js";
import { scenarioResult } from "../lib/result.js";
import { WorkerPool } from "../lib/worker-pool.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";
import { QueueJobsCheck } from "./queue-check.js";
import { StaleWorkerProbes } from "./queue-probes.js";

const WORKERS = 3;
const PRODUCERS = 8;
/** Lease of the workers' jobs, ms: a SIGSTOP of the schedule (200–1,200 ms) often outlasts it. */
const LEASE_MS = 1_000;
/** After the last add and fault, every acknowledged job must be completed within this time, ms. */
const DRAIN_MS = 60_000;
/** A worker is stalled (SIGSTOP) past its lease about this often, ms, on top of the random faults. */
const STALL_EVERY_MS = 600;
/** Length of those stalls, ms: the lease expires and the job is handed to another worker while it lasts. */
const STALL_MS: readonly [number, number] = [LEASE_MS + 300, LEASE_MS + 900];
/**
 * A redelivery (attempt > 1) runs this long before its effect, ms: longer than what is left of a stall once the job was
 * reclaimed, so the stalled worker, resumed, tries to complete the job while the delivery that replaced it still runs.
 * Only the fence check of the finish script refuses that completion.
 */
const REDELIVERY_MS = 2_000;

/**
 * The random faults of `generated` plus a stall of one worker past its lease every {@link STALL_EVERY_MS}, each on a
 * worker no random step touches at that time, drawn from the seed. Under the random faults Redis may be down when a
 * stall ends, so the job may be reclaimed only after the stalled worker resumed (no stale completion to refuse):
 * {@link StaleWorkerProbes} makes sure the stale-worker cases happen in every run.
 */
function withStalls(generated: FaultSchedule, seed: number, durationMs: number): FaultSchedule {
  const random = mulberry32(seed ^ 0x5eed);
  const busy = (index: number, from: number, to: number) =>
    generated.steps.some(
      (s) => s.target === "process" && s.index === index && s.atMs < to + 250 && s.atMs + s.durationMs + 250 > from,
    );
  const stalls: FaultStep[] = [];
  for (let at = 200; at < durationMs; at += STALL_EVERY_MS) {
    const stallMs = Math.round(STALL_MS[0] + random() * (STALL_MS[1] - STALL_MS[0]));
    const first = Math.floor(random() * WORKERS);
    for (let k = 0; k < WORKERS; k++) {
      const index = (first + k) % WORKERS;
      // One stall per worker at a time, and never overlapping a random fault of the same worker.
      if (busy(index, at, at + stallMs) || stalls.some((s) => s.index === index && s.atMs + s.durationMs + 250 > at)) {
        continue;
      }
      stalls.push({ atMs: at, fault: "pause", target: "process", index, durationMs: stallMs });
      break;
    }
  }
  return faultSchedule({ seed, steps: [...generated.steps, ...stalls] });
}

/**
 * Queue checker: 8 producers add `jobs` numbered jobs through a proxy (latency, dropped connections, partitions),
 * spread over the run, each with its own id, retrying a failed add with the same id until it is acknowledged; 3 worker
 * processes are SIGKILLed (and respawned) and SIGSTOPped at random, with a 1 s lease, and one of them is stalled past
 * its lease every 0.6 s while redeliveries run long (so a resumed worker tries to complete a job that another worker
 * runs); Redis (AOF, `appendfsync always`) is killed and restarted. Each job's handler applies its effect to a fenced
 * register kept by this process (a write is accepted only with a fence above every one accepted for that job) and
 * returns its fence. Once every job is done, the {@link StaleWorkerProbes} pause a worker holding a job until another
 * worker took it over, in every run. Checked at the end: every acknowledged job is completed (none lost, none dead),
 * each delivery of a job has its own fence, the effect that stuck for each job is the one of the delivery Redis
 * recorded as its completion (exactly-once effect under fences), and no stale worker's completion was accepted.
 */
export function queueScenario(jobs: number): ChaosScenario {
  return {
    name: "queue",
    description: `${jobs} idempotent adds with retries; workers SIGKILLed and SIGSTOPped past their lease, Redis (AOF always) killed/restarted`,
    defaultDurationMs: 60_000,
    async run({ seed, durationMs, log }): Promise<ScenarioResult> {
      const started = performance.now();
      const generated = durableRedisSchedule(seed, durationMs, WORKERS);
      const schedule = withStalls(generated, generated.seed, durationMs);
      log(describeSchedule(schedule));
      const violations = new Violations();
      const prefix = testPrefix();
      const name = `chaos-queue-${seed}`;
      const jobsCheck = new QueueJobsCheck(violations);
      const { acked, counts } = jobsCheck;
      const probes = new StaleWorkerProbes(violations);
      // The processes load while the server starts.
      const pool = new WorkerPool({
        file: "queue-worker.ts",
        count: WORKERS,
        crashes: violations,
        onMessage(msg, worker) {
          jobsCheck.onMessage(msg, worker);
          if (msg.type === "outcome" || msg.type === "hold") probes.reports.record({ worker, msg });
        },
      });
      let redis: DurableRedis | undefined;
      try {
        redis = await startDurableRedis(seed);
        const { server, proxy } = redis;
        const queue = new Queue<number>(redis.producer, name, {
          prefix,
          defaults: { attempts: 1_000, backoff: { type: "fixed", delayMs: 10 } },
        });
        await pool.start(() => ({
          url: server.url,
          prefix,
          name,
          leaseMs: LEASE_MS,
          redeliveryMs: REDELIVERY_MS,
          // The checker reads every job at the end: none may be dropped by retention.
          keepCompleted: jobs + 10,
        }));

        const faults = runSchedule(
          schedule,
          { servers: [server], proxies: [proxy], processes: pool.processes },
          { onInject: pool.respawnKilled },
        );
        const adds = await produce({
          count: jobs,
          producers: PRODUCERS,
          spreadMs: schedule.durationMs,
          violations,
          errorKind: "add-error",
          async call(n) {
            const id = `job-${n}`;
            const { duplicate } = await queue.add(n, { id });
            if (duplicate) counts.duplicates++;
            acked.add(id);
          },
        });
        log(`added ${acked.size} jobs (${adds.retries} retries, ${counts.duplicates} duplicates)`);
        const faultLog = await faults;

        const reader = new Queue<number, number>(redis.checker(), name, { prefix });
        const drained = async () => {
          const c = await reader.counts();
          return c.completed >= acked.size || c.dead > 0;
        };
        // Every job done and every live worker idle (each delivery it started has its outcome): what a worker
        // reports from here on is about the probes.
        await tryWaitUntil(async () => (await drained()) && jobsCheck.idle(), { timeoutMs: DRAIN_MS, intervalMs: 100 });
        const probeOutcomes = await probes.run(queue);
        const all = [...acked, ...probes.ids];
        await tryWaitUntil(async () => (await reader.counts()).completed >= all.length, {
          timeoutMs: DRAIN_MS,
          intervalMs: 100,
        });
        await pool.stop();
        const completed = await jobsCheck.check(reader, all);
        await reader.close();
        await queue.close();
        return scenarioResult(started, violations, {
          scenario: "queue",
          operations: adds.calls + counts.deliveries,
          faultsInjected: faultLog.injected,
          seed,
          details: {
            jobs,
            acknowledged: acked.size,
            completed,
            redelivered: jobsCheck.redelivered,
            stalls: schedule.steps.length - generated.steps.length,
            probes: probeOutcomes,
            addCalls: adds.calls,
            retries: adds.retries,
            ...counts,
            workerRespawns: pool.respawns,
            workerCrashes: pool.crashes,
            faultsByKind: faultLog.byKind,
            persistence: "appendonly, appendfsync always",
            durationMs,
          },
        });
      } finally {
        await pool.stop(0);
        await redis?.close();
      }
    },
  };
}
