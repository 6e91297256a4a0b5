// Queue checker worker: runs a Worker of the queue; each job asks the parent to apply its effect with the delivery's
// fence (the parent's fenced register accepts it or not) and returns that fence as the job's result. The parent
// SIGKILLs (and respawns) and SIGSTOPs these processes at random, and stalls them past their lease. A probe job
// (negative data) waits for the parent's go before its effect: the parent pauses this process meanwhile and lets
// another worker take the job over. Every delivery's outcome as the Worker reports it (completed, refused, ...) is
// told to the parent, with whether its handler started.
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@coordis/core";
import { Worker } from "@coordis/queue";
import { ask, config, connected, stopped, tell } from "./ipc.js";

interface QueueWorkerConfig {
  url: string;
  prefix: string;
  name: string;
  leaseMs: number;
  /** How long a redelivery (attempt > 1) runs before its effect, ms. */
  redeliveryMs: number;
  /** Completed jobs kept (at least the run's job count: the checker reads every one). */
  keepCompleted: number;
  /** The queue's partitions (default 1). */
  partitions?: number;
}

/**
 * A delivery whose lease passed before its handler could start (this process was stopped while the fetch's reply
 * waited) ends as a lost lease's without a `start`: its outcome names it (`Job "<id>" (fence <n>) stopped`). Such an
 * outcome is told as `started: false`, so the parent counts only the outcomes of the deliveries it saw start.
 */
const startedDeliveries = new Set<string>();
const LOST = /Job "(.*)" \(fence (\d+)\) stopped/;
function wasStarted(error: Error | undefined): boolean {
  const lost = error === undefined ? null : LOST.exec(error.message);
  return lost === null || startedDeliveries.has(`${lost[1]} ${lost[2]}`);
}

const cfg = await config<QueueWorkerConfig>();
const redis = connect(cfg.url, { commandTimeoutMs: 1_000 });
await connected([redis]);
const worker = new Worker<number, number>(
  redis,
  cfg.name,
  async (job) => {
    startedDeliveries.add(`${job.id} ${job.fence}`);
    tell({ type: "start", jobId: job.id, fence: job.fence, attempt: job.attempt });
    if (job.data < 0) await ask({ type: "hold", jobId: job.id, fence: job.fence });
    // Mostly short handlers; every 10th runs 250 ms, so a stalled worker nearly always holds a job in its handler. A
    // redelivery runs longer than a stall outlasts the lease, so the worker resumed from the stall meets the delivery
    // that replaced it still running, and tries to complete the job first.
    else await sleep(job.attempt > 1 ? cfg.redeliveryMs : job.data % 10 === 0 ? 250 : 1 + (job.data % 7));
    await ask({ type: "effect", jobId: job.id, fence: job.fence });
    return job.fence;
  },
  {
    prefix: cfg.prefix,
    ...(cfg.partitions === undefined ? {} : { partitions: cfg.partitions }),
    concurrency: 8,
    leaseMs: cfg.leaseMs,
    schedules: false,
    // Idle workers look again at least every 250 ms, so a stalled worker's expired lease is reclaimed before it resumes.
    blockMs: 250,
    retention: { completed: cfg.keepCompleted },
    observer: {
      onOperation(op) {
        if (op.op === "process") {
          tell({
            type: "outcome",
            outcome: op.outcome,
            attempt: op.attributes?.attempt,
            started: wasStarted(op.error),
          });
        }
      },
    },
  },
);
tell({ type: "ready" });
await stopped();
await worker.close({ timeoutMs: 1_000 });
tell({ type: "stopped", stats: worker.stats() });
redis.disconnect();
process.disconnect?.();
