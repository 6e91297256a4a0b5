/**
 * Job queue: a producer adds invoice jobs (idempotently by id, one of them delayed), workers total them and write
 * the totals to a store that checks each job's fence, and the producer waits for the results. Then a worker is
 * stopped mid-job (as in a deploy): the job is handed to another worker with a higher fence, and the first worker's
 * late write is refused, so each invoice's total is written by exactly one delivery.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@coordis/source examples/job-queue.ts
 */
import { performance } from "node:perf_hooks";
import { connect } from "@coordis/core";
import { type Job, Queue, Worker } from "@coordis/queue";

const redis = connect(process.env.REDIS_URL);
const prefix = process.env.COORDIS_PREFIX ?? "coordis";
const name = `invoices-${Date.now()}`; // a fresh queue per run

interface Invoice {
  id: string;
  lines: number[];
}

// The system the handler writes to. It keeps the fence of the write it accepted and refuses a lower one; in SQL:
// UPDATE invoices SET total = $1, fence = $2 WHERE id = $3 AND fence < $2.
const totals = new Map<string, { total: number; fence: number; by: string }>();
function writeTotal(id: string, total: number, fence: number, by: string): boolean {
  const current = totals.get(id);
  if (current !== undefined && current.fence >= fence) return false;
  totals.set(id, { total, fence, by });
  return true;
}

// Worker "a" stalls on invoice "inv-slow" until released (long enough for the job to be handed to another worker).
let release!: () => void;
const released = new Promise<void>((r) => {
  release = r;
});
let slowStarted!: (fence: number) => void;
const slowFence = new Promise<number>((r) => {
  slowStarted = r;
});
let staleWritten!: (accepted: boolean) => void;
const staleWrite = new Promise<boolean>((r) => {
  staleWritten = r;
});

const handler = (worker: string) => async (job: Job<Invoice>) => {
  const total = job.data.lines.reduce((a, b) => a + b, 0);
  if (job.data.id === "inv-slow" && worker === "a") {
    slowStarted(job.fence);
    await released;
    staleWritten(writeTotal(job.data.id, total, job.fence, worker));
    return total;
  }
  if (!writeTotal(job.data.id, total, job.fence, worker)) throw new Error(`superseded (fence ${job.fence})`);
  return total;
};

const queue = new Queue<Invoice, number>(redis, name, { prefix });
const a = new Worker<Invoice, number>(redis, name, handler("a"), { prefix, concurrency: 5, schedules: false });

// Produce: three invoices in one round trip, then one of them again (same id: nothing is created).
const added = await queue.addMany(
  [
    { id: "inv-1", lines: [120, 30] },
    { id: "inv-2", lines: [99] },
    { id: "inv-3", lines: [10, 20, 30] },
  ].map((inv) => ({ data: inv, opts: { id: inv.id, attempts: 5 } })),
);
const again = await queue.add({ id: "inv-1", lines: [120, 30] }, { id: "inv-1" });
console.log(`added ${added.map((r) => r.id).join(", ")}; inv-1 again: duplicate=${again.duplicate}`);
if (!again.duplicate || added.some((r) => r.duplicate)) throw new Error("idempotent adds did not hold");

// Results: waits for each job without polling.
const results = await Promise.all(added.map((r) => queue.result(r.id, { timeoutMs: 20_000 })));
console.log(`results: ${results.join(", ")}`);
if (results.join() !== "150,99,60") throw new Error(`unexpected results ${results.join()}`);

// A delayed job: due one second after the add, by Redis server time.
const t0 = performance.now();
await queue.add({ id: "inv-later", lines: [5, 5] }, { id: "inv-later", delayMs: 1_000 });
const later = await queue.result("inv-later", { timeoutMs: 20_000 });
const waited = Math.round(performance.now() - t0);
console.log(`delayed job: ${later} after ${waited} ms`);
if (later !== 10 || waited < 995) throw new Error(`the delayed job ran after ${waited} ms`);

// A worker stopped mid-job: "a" hands "inv-slow" back at once and "b" runs it with a higher fence.
await queue.add({ id: "inv-slow", lines: [1, 2, 3] }, { id: "inv-slow" });
const fenceA = await slowFence;
const b = new Worker<Invoice, number>(redis, name, handler("b"), { prefix, schedules: false });
const stopping = a.close({ timeoutMs: 0 });
const slow = await queue.result("inv-slow", { timeoutMs: 20_000 });
const stored = totals.get("inv-slow");
console.log(`inv-slow: ${slow}, written by ${stored?.by} with fence ${stored?.fence} (worker a had fence ${fenceA})`);
// Now the stalled worker wakes up and writes: its fence is older, so the store refuses it.
release();
await stopping;
const accepted = await staleWrite;
console.log(`worker a's late write with fence ${fenceA}: ${accepted ? "accepted" : "refused"}`);
if (accepted || stored?.by !== "b" || (stored?.fence ?? 0) <= fenceA) throw new Error("the fence did not hold");

const info = await queue.get("inv-slow");
console.log(`inv-slow: state ${info?.state}, attempts ${info?.attempts}`);
if (info?.state !== "completed") throw new Error("inv-slow did not complete");

await b.close();
await queue.close();
redis.disconnect();
