import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-delayed-fifo");

describe("FIFO for jobs that become due at the same time", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("delayed jobs added together (one addMany, generated ids) run in the order they were added", async () => {
    const name = "delayed-addmany";
    const q = queue<number, number>(name);
    const order: number[] = [];
    worker<number, number>(
      name,
      async (job) => {
        order.push(job.data);
        return job.data;
      },
      { concurrency: 1 },
    );
    const n = 30;
    // One script call: every job gets the same due time (server ms).
    await q.addMany(Array.from({ length: n }, (_, i) => ({ data: i, opts: { delayMs: 300 } })));
    await waitUntil("every job ran", () => order.length === n, 15_000);
    expect(order).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it("jobs of one group held back by its rate limit run in the order they were added", async () => {
    const name = "rate-fifo";
    const q = queue<number, number>(name);
    const n = 8;
    await q.addMany(Array.from({ length: n }, (_, i) => ({ data: i, opts: { group: "tenant" } })));
    const order: number[] = [];
    // One fetch reads them all; the first passes, the others wait for the window's end (one due time for all).
    worker<number, number>(
      name,
      async (job) => {
        order.push(job.data);
        return job.data;
      },
      { concurrency: n, groups: { rateLimit: [{ limit: 1, windowMs: 200 }] } },
    );
    await waitUntil("every job ran", () => order.length === n, 15_000);
    expect(order).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});
