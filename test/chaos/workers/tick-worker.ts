// runOncePerTick checker worker: a replica of a cron job. For every tick the parent announces, it calls
// runOncePerTick for two jobs after its own random schedule skew:
//   once:  retryOnError false; fn works in small steps and stops (throws) as soon as ctx.signal aborts.
//   retry: retryOnError true; fn ignores ctx.signal (a stubborn job), so a run that lost its tick keeps going.
// Jobs last longer than both the lease's ttlMs and recordTtlMs. Every run is reported: when fn started and stopped,
// its fence, and what runOncePerTick returned or threw.
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@coordis/core";
import { runOncePerTick } from "@coordis/lock";
import { config, connected, onCommand, prng, stopped, tell, tellFlushed } from "./ipc.js";

interface TickWorkerConfig {
  url: string;
  prefix: string;
  owner: string;
  ttlMs: number;
  recordTtlMs: number;
  /** Each call waits 0..skewMaxMs after the tick was announced (this replica's schedule skew). */
  skewMaxMs: number;
  /** fn lasts jobMs[0]..jobMs[1]. */
  jobMs: [number, number];
  commandTimeoutMs: number;
  seed: number;
}

const STEP_MS = 20;
const JOBS = { once: false, retry: true } as const;

const cfg = await config<TickWorkerConfig>();
const redis = connect(cfg.url, { commandTimeoutMs: cfg.commandTimeoutMs });
const random = prng(cfg.seed);
let inFlight = 0;

async function call(job: keyof typeof JOBS, tick: number): Promise<void> {
  inFlight++;
  await sleep(Math.floor(random() * cfg.skewMaxMs)); // this replica's schedule skew: the scenario itself
  const jobMs = cfg.jobMs[0] + Math.floor(random() * (cfg.jobMs[1] - cfg.jobMs[0]));
  let run: { fence: number; startAt: number; stopAt: number; fnThrew: boolean } | undefined;
  let outcome: string;
  let code = "";
  try {
    const result = await runOncePerTick(
      redis,
      job,
      tick,
      async (ctx) => {
        const started = { fence: ctx.fence, startAt: Date.now(), stopAt: 0, fnThrew: false };
        run = started;
        // Reported before the work starts, so a run stays visible even if this call never returns.
        tell({ type: "run-start", job, tick, fence: ctx.fence, startAt: started.startAt });
        const until = Date.now() + jobMs;
        try {
          while (Date.now() < until) {
            if (!JOBS[job] && ctx.signal.aborted) {
              started.fnThrew = true;
              throw ctx.signal.reason;
            }
            await sleep(STEP_MS);
          }
        } finally {
          started.stopAt = Date.now();
        }
      },
      {
        prefix: cfg.prefix,
        owner: cfg.owner,
        ttlMs: cfg.ttlMs,
        recordTtlMs: cfg.recordTtlMs,
        retryOnError: JOBS[job],
        historyLimit: 10_000,
      },
    );
    // ok: ran here and recorded; otherwise another replica has (had) the tick.
    outcome = result.ran ? result.state : `skipped-${result.state}`;
  } catch (err) {
    code = String((err as { code?: string }).code ?? (err as Error).name);
    const r = run as { fnThrew: boolean } | undefined;
    // aborted: fn stopped on its signal; lost: fn returned but the run no longer held the tick (not recorded).
    outcome =
      r === undefined ? "call-failed" : r.fnThrew ? "aborted" : code === "ERR_LEASE_LOST" ? "lost" : "finish-failed";
  }
  if (run !== undefined) {
    const { fence, startAt, stopAt } = run as { fence: number; startAt: number; stopAt: number };
    await tellFlushed({ type: "run", job, tick, fence, startAt, stopAt, returnedAt: Date.now(), outcome, code });
  } else tell({ type: "skipped", job, tick, outcome, code });
  inFlight--;
  if (inFlight === 0) {
    tell({ type: "idle" });
    idle();
  }
}

let idle: () => void = () => {};

onCommand((msg) => {
  if (msg.type === "tick") {
    for (const job of Object.keys(JOBS) as Array<keyof typeof JOBS>) void call(job, msg.tick as number);
  }
});

await connected([redis]);
tell({ type: "ready" });
await stopped();
// Calls in flight end first (their runs are reported).
if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
redis.disconnect();
process.disconnect?.();
