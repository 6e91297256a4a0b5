import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-priority-fifo");

describe("FIFO within a priority, for jobs enqueued in the same millisecond", () => {
  const { worker, queue } = onSharedServer(prefix);

  /** Runs every job of `q` one at a time and resolves with the data in the order they ran. */
  async function runOrder(name: string, count: number): Promise<string[]> {
    const order: string[] = [];
    worker<string, void>(name, async (job) => {
      order.push(job.data);
    });
    await waitUntil(`all ${count} ran`, () => order.length === count, 10_000);
    return order;
  }

  it("addMany and micro-batched adds of one priority (generated ids) run in the order they were added", async () => {
    const name = "same-ms";
    const q = queue<string>(name);
    const batch = Array.from({ length: 40 }, (_, i) => `m${String(i).padStart(2, "0")}`);
    // One script call: every job enqueued at the same server millisecond.
    await q.addMany(batch.map((data) => ({ data, opts: { priority: 4 } })));
    // Micro-batched: adds of one event-loop turn go in one call too.
    const singles = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, "0")}`);
    await Promise.all(singles.map((data) => q.add(data, { priority: 4 })));
    // A higher priority added last still comes first.
    await q.add("first", { priority: 1 });
    expect(await runOrder(name, 61)).toEqual(["first", ...batch, ...singles]);
  });

  it("one producer's add, addMany and add of one turn run in that order", async () => {
    for (const priority of [0, 4]) {
      const name = `mixed-${priority}`;
      const q = queue<string>(name);
      await q.add("warm-up", { priority }); // the queue's first use (its partition check) is behind it
      await Promise.all([
        q.add("first", { priority }),
        q.addMany([{ data: "second", opts: { priority } }]),
        q.add("third", { priority }),
      ]);
      expect(await runOrder(name, 4)).toEqual(["warm-up", "first", "second", "third"]);
    }
  });
});
