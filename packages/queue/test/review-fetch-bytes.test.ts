import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { FETCH_MAX_BYTES } from "../src/fetch-loop.js";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-fetch-bytes");

const MIB = 1024 * 1024;

describe("a backlog of large jobs and a worker of high concurrency", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("each fetch hands out at most FETCH_MAX_BYTES of jobs (one job at least): the rest keep their order", async () => {
    // Without a bound, one fetch would bring every job of the backlog in one reply (200 jobs of 512 KiB, the default
    // maxPayloadBytes, are 100 MB): a reply that outlasts the client's command timeout is lost, and every job it
    // carried waits out its lease with that attempt counted (a job of one attempt dies without ever running).
    const name = "large";
    const q = queue<string, number>(name, { maxPayloadBytes: 2 * MIB });
    const n = 16;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      // Each job is 1 MiB, its first character its rank.
      const { id } = await q.add(String.fromCharCode(65 + i) + "x".repeat(MIB - 1), { attempts: 1 });
      ids.push(id);
    }
    // Jobs of one fetch start in the same turn of the event loop (one synchronous loop over the reply).
    const batches: string[][] = [];
    let batch: string[] | undefined;
    const order: string[] = [];
    worker<string, number>(
      name,
      async (job) => {
        if (batch === undefined) {
          const current: string[] = [];
          batch = current;
          batches.push(current);
          setImmediate(() => {
            batch = undefined;
          });
        }
        batch.push(job.id);
        order.push(job.data.charAt(0));
        return job.data.length;
      },
      { concurrency: n, maxPayloadBytes: 2 * MIB },
    );
    await waitUntil("every job to run", () => order.length === n, 20_000);
    for (const id of ids) expect(await q.result(id, { timeoutMs: 10_000 })).toBe(MIB);
    const perFetch = Math.floor(FETCH_MAX_BYTES / MIB);
    expect(Math.max(...batches.map((b) => b.length))).toBeLessThanOrEqual(perFetch);
    expect(batches.length).toBeGreaterThanOrEqual(Math.ceil(n / perFetch));
    // FIFO all the same: the jobs a fetch left behind ran before the ones behind them.
    expect(order.join("")).toBe(Array.from({ length: n }, (_, i) => String.fromCharCode(65 + i)).join(""));
  });
});
