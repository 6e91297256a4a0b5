// Queue checker worker: runs a Worker of the queue; each job asks the parent to apply its effect with the delivery's
// fence (the parent's fenced register accepts it or not) and returns that fence as the job's result. The parent
// SIGKILLs (and respawns) and SIGSTOPs these processes at random.
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@coordis/core";
import { Worker } from "@coordis/queue";
import { ask, connected, stopping, tell } from "./ipc.js";

interface QueueWorkerConfig {
  url: string;
  prefix: string;
  name: string;
  leaseMs: number;
}

const cfg = JSON.parse(process.argv[2] as string) as QueueWorkerConfig;
const redis = connect(cfg.url, { commandTimeoutMs: 1_000 });
await connected([redis]);
const worker = new Worker<number, number>(
  redis,
  cfg.name,
  async (job) => {
    tell({ type: "start", jobId: job.id, fence: job.fence, attempt: job.attempt });
    // Mostly short handlers; every 20th runs 300 ms, so a worker resumed from a pause can meet the delivery that
    // replaced it still running.
    await sleep(job.data % 20 === 0 ? 300 : 1 + (job.data % 7));
    await ask({ type: "effect", jobId: job.id, fence: job.fence });
    return job.fence;
  },
  { prefix: cfg.prefix, concurrency: 8, leaseMs: cfg.leaseMs, schedules: false },
);
tell({ type: "ready" });
while (!stopping()) await sleep(50);
await worker.close({ timeoutMs: 1_000 });
tell({ type: "stopped", stats: worker.stats() });
redis.disconnect();
process.disconnect?.();
