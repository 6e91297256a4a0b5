/**
 * Cron lock: three replicas run the same schedule; each tick's job runs on exactly one of them, and the run
 * history says which one.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@coordis/source examples/cron-lock.ts
 */
import { connect } from "@coordis/core";
import { runOncePerTick, tickHistory } from "@coordis/lock";

const redis = connect(process.env.REDIS_URL);
const prefix = process.env.COORDIS_PREFIX ?? "coordis";
const job = `report-${Date.now()}`; // a fresh job name per run, so the example starts from an empty history

// What every replica does when its timer fires: claim the tick, run the job if the claim is won.
async function onTimer(replica: string, tick: number): Promise<string> {
  const outcome = await runOncePerTick(
    redis,
    job,
    tick,
    async ({ fence, signal }) => {
      // Real work goes here; pass `fence` to the store you write to and stop when `signal` aborts.
      signal.throwIfAborted();
      return `report #${tick} built with fence ${fence}`;
    },
    { ttlMs: 10_000, owner: replica, prefix },
  );
  return outcome.ran
    ? `${replica}: ran (${outcome.result})`
    : `${replica}: skipped, ${outcome.state} on ${outcome.owner}`;
}

for (const tick of [1, 2, 3]) {
  // The replicas' timers fire at about the same moment (their clocks may differ by seconds).
  const lines = await Promise.all(["replica-a", "replica-b", "replica-c"].map((r) => onTimer(r, tick)));
  console.log(`tick ${tick}\n  ${lines.join("\n  ")}`);
  if (lines.filter((l) => l.includes(": ran")).length !== 1) throw new Error(`tick ${tick} did not run exactly once`);
}

const history = await tickHistory(redis, job, { prefix });
console.log("history (newest first):", history.map((r) => `tick ${r.tick} on ${r.owner}, ok=${r.ok}`).join("; "));
redis.disconnect();
