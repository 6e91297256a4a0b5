import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Queue } from "@coordis/queue";
import {
  describeSchedule,
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
import {
  type ChaosWorker,
  reply,
  spawnWorker,
  stopWorkers,
  Violations,
  type WorkerMessage,
  waitReady,
} from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

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
/** Adds go on until this long after the calm tail's stall began, so jobs are running whenever a fault hits, ms. */
const ADDS_AFTER_TAIL_MS = 200;

/**
 * The random faults of `generated` plus a stall of one worker past its lease every {@link STALL_EVERY_MS}, each on a
 * worker no random step touches at that time, and one more stall in a calm tail once every other fault is over: under
 * the random faults Redis may be down when a stall ends, so the job is reclaimed only after the stalled worker resumed
 * (no stale completion to refuse); in the tail the reclaim always comes first. The stalled workers are drawn from the
 * seed. Returns the schedule and when the tail's stall begins (ms into the run).
 */
function withStalls(
  generated: FaultSchedule,
  seed: number,
  durationMs: number,
): { schedule: FaultSchedule; tailAt: number } {
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
  const tailAt = Math.max(durationMs, generated.durationMs, ...stalls.map((x) => x.atMs + x.durationMs)) + 300;
  const tailMs = Math.round(STALL_MS[0] + random() * (STALL_MS[1] - STALL_MS[0]));
  stalls.push({
    atMs: tailAt,
    fault: "pause",
    target: "process",
    index: Math.floor(random() * WORKERS),
    durationMs: tailMs,
  });
  return { schedule: faultSchedule({ seed, steps: [...generated.steps, ...stalls] }), tailAt };
}

/**
 * Queue checker: 8 producers add `jobs` numbered jobs through a proxy (latency, dropped connections, partitions),
 * spread over the run, each with its own id, retrying a failed add with the same id until it is acknowledged; 3 worker
 * processes are SIGKILLed (and respawned) and SIGSTOPped at random, with a 1 s lease, and one of them is stalled past
 * its lease every 0.6 s while redeliveries run long (so a resumed worker tries to complete a job that another worker
 * runs); Redis (AOF, `appendfsync always`) is killed and restarted. Each job's handler applies its effect to a fenced register kept by this process (a write is accepted
 * only with a fence above every one accepted for that job) and returns its fence. Checked at the end: every
 * acknowledged job is completed (none lost, none dead), each delivery of a job has its own fence, and the effect that
 * stuck for each job is the one of the delivery Redis recorded as its completion (exactly-once effect under fences).
 */
export function queueScenario(jobs: number): ChaosScenario {
  return {
    name: "queue",
    description: `${jobs} idempotent adds with retries; workers SIGKILLed and SIGSTOPped past their lease, Redis (AOF always) killed/restarted`,
    defaultDurationMs: 60_000,
    async run({ seed, durationMs, log }): Promise<ScenarioResult> {
      const started = performance.now();
      const generated = faultSchedule({
        seed,
        generate: {
          durationMs,
          faults: ["pause", "kill", "restart", "latency", "drop", "blackhole"],
          meanIntervalMs: Math.min(2_000, Math.max(300, Math.round(durationMs / 12))),
          targets: { servers: 1, proxies: 1, processes: WORKERS },
          faultMs: [200, 1_200],
          latencyMs: [5, 60],
        },
      });
      const { schedule, tailAt } = withStalls(generated, generated.seed, durationMs);
      log(describeSchedule(schedule));
      const violations = new Violations();
      const prefix = testPrefix();
      const name = `chaos-queue-${seed}`;
      let server: RedisServer | undefined;
      let proxy: FaultProxy | undefined;
      let producer: RedisClient | undefined;
      let checker: RedisClient | undefined;
      const workers: ChaosWorker[] = [];
      const acked = new Set<string>();
      /** Per job: the fences its deliveries started with, and the fences the register accepted, in order. */
      const starts = new Map<string, number[]>();
      const accepted = new Map<string, number[]>();
      const counts = { addCalls: 0, retries: 0, duplicates: 0, deliveries: 0, refusedEffects: 0, workerRespawns: 0 };
      try {
        server = await startRedis({ appendOnly: true, config: { appendfsync: "always" }, leastPrivilege: true });
        proxy = await startProxy({ target: server, seed });
        producer = connect(proxy.url, { commandTimeoutMs: 1_000 });
        const queue = new Queue<number>(producer, name, {
          prefix,
          defaults: { attempts: 1_000, backoff: { type: "fixed", delayMs: 10 } },
        });
        let ready = 0;
        const onMessage = (msg: WorkerMessage, worker: ChaosWorker) => {
          if (msg.type === "ready") ready++;
          else if (msg.type === "start") {
            counts.deliveries++;
            const list = starts.get(msg.jobId as string) ?? [];
            list.push(msg.fence as number);
            starts.set(msg.jobId as string, list);
          } else if (msg.type === "effect") {
            const id = msg.jobId as string;
            const fence = msg.fence as number;
            const list = accepted.get(id) ?? [];
            const ok = list.length === 0 || fence > (list.at(-1) as number);
            if (ok) {
              list.push(fence);
              accepted.set(id, list);
            } else counts.refusedEffects++;
            reply(worker, msg, { accepted: ok });
          }
        };
        const spawn = (slot: number) =>
          spawnWorker(
            "queue-worker.ts",
            slot,
            [
              JSON.stringify({
                url: (server as RedisServer).url,
                prefix,
                name,
                leaseMs: LEASE_MS,
                redeliveryMs: REDELIVERY_MS,
                // The checker reads every job at the end: none may be dropped by retention.
                keepCompleted: jobs,
              }),
            ],
            onMessage,
          );
        for (let i = 0; i < WORKERS; i++) workers.push(spawn(i));
        await waitReady(workers, () => ready);

        let next = 0;
        const addsFrom = performance.now();
        const addEveryMs = (tailAt + ADDS_AFTER_TAIL_MS) / jobs;
        const produce = async () => {
          for (;;) {
            const n = next++;
            if (n >= jobs) return;
            const wait = addsFrom + n * addEveryMs - performance.now();
            if (wait > 1) await sleep(wait);
            const id = `job-${n}`;
            for (let attempt = 0; ; attempt++) {
              counts.addCalls++;
              if (attempt > 0) counts.retries++;
              try {
                const { duplicate } = await queue.add(n, { id });
                if (duplicate) counts.duplicates++;
                acked.add(id);
                break;
              } catch (err) {
                if (!(err instanceof RedisUnavailableError)) {
                  violations.add("add-error", `${id}: ${(err as Error).name}: ${(err as Error).message}`);
                  break;
                }
                await sleep(Math.min(200, 10 * 2 ** Math.min(attempt, 5)));
              }
            }
          }
        };
        const processes = workers.map((w) => w.child);
        const faults = runSchedule(
          schedule,
          { servers: [server], proxies: [proxy], processes },
          {
            onInject({ step }) {
              if (step.target !== "process" || step.fault !== "kill") return;
              counts.workerRespawns++;
              const w = spawn(step.index);
              workers.push(w);
              processes[step.index] = w.child;
            },
          },
        );
        await Promise.all(Array.from({ length: PRODUCERS }, produce));
        log(`added ${acked.size} jobs (${counts.retries} retries, ${counts.duplicates} duplicates)`);
        const faultLog = await faults;

        checker = connect(server.url, { commandTimeoutMs: 10_000 });
        const reader = new Queue<number, number>(checker, name, { prefix });
        const end = performance.now() + DRAIN_MS;
        let c = await reader.counts();
        while (c.completed < acked.size && c.dead === 0 && performance.now() < end) {
          await sleep(100);
          c = await reader.counts();
        }
        await stopWorkers(workers);
        let completed = 0;
        for (const id of acked) {
          const info = await reader.get(id);
          if (info?.state !== "completed") {
            violations.add("not-completed", `acknowledged ${id} is ${info === null ? "gone" : info.state}`);
            continue;
          }
          completed++;
          const fences = starts.get(id) ?? [];
          if (new Set(fences).size !== fences.length)
            violations.add("fence-reused", `${id}: fences ${fences.join(",")}`);
          const stuck = (accepted.get(id) ?? []).at(-1);
          if (stuck !== info.result) {
            violations.add(
              "effect",
              `${id}: effect of fence ${stuck} stuck, Redis recorded the completion of ${info.result}`,
            );
          }
        }
        const dead = (await reader.deadLetters({ limit: 10 })).jobs;
        for (const d of dead) violations.add("dead", `${d.id} died: ${d.error}`);
        await reader.close();
        await queue.close();
        return {
          scenario: "queue",
          operations: counts.addCalls + counts.deliveries,
          faultsInjected: faultLog.injected,
          violations: violations.count,
          seed,
          elapsedMs: Math.round(performance.now() - started),
          details: {
            jobs,
            acknowledged: acked.size,
            completed,
            redelivered: [...starts.values()].filter((f) => f.length > 1).length,
            stalls: schedule.steps.length - generated.steps.length,
            ...counts,
            violationsByKind: violations.byKind,
            faultsByKind: faultLog.byKind,
            persistence: "appendonly, appendfsync always",
            durationMs,
          },
          samples: violations.samples,
        };
      } finally {
        await stopWorkers(workers, 0);
        producer?.disconnect();
        checker?.disconnect();
        await proxy?.close();
        await server?.stop();
      }
    },
  };
}
