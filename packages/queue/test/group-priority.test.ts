import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-priority");

describe("priorities of jobs that waited for a slot of their group", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("a priority-9 job released from its group's wait is served after a waiting priority-5 job, not ahead of it", async () => {
    const name = "released-priority";
    const q = queue<string, string>(name);
    // Added before any worker runs: the first fetch (2 free slots) runs a and finds b over its group's limit.
    await q.add("a", { id: "a", group: "g" });
    await q.add("b", { id: "b", group: "g", priority: 9 });
    const started: string[] = [];
    const first = worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        await new Promise((resolve) => job.signal.addEventListener("abort", resolve));
        return job.id;
      },
      { concurrency: 2, groups: { concurrency: 1 } },
    );
    await waitUntil("a runs", () => started.includes("a"), 10_000);
    expect(await q.get("b")).toMatchObject({ state: "waiting", priority: 9 });
    // Closing hands a back, which frees its group's slot: b leaves the group's wait.
    await first.close({ timeoutMs: 0 });
    expect(await q.get("a")).toMatchObject({ state: "waiting", attempts: 0 });
    await q.add("c", { id: "c", priority: 5 });
    // One slot: each fetch takes the first job by priority (a: 0, c: 5, b: 9).
    const order: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        order.push(job.id);
        return job.id;
      },
      { concurrency: 1, groups: { concurrency: 1 } },
    );
    for (const id of ["a", "b", "c"]) await expect(q.result(id, { timeoutMs: 10_000 })).resolves.toBe(id);
    expect(order).toEqual(["a", "c", "b"]);
    expect(started).toEqual(["a"]);
  });

  it("jobs of one group parked together for its slot run in the order they were added (generated ids)", async () => {
    const name = "parked-order";
    const q = queue<number, number>(name);
    // One fetch of 8 slots reads them all at the same server millisecond: the first runs, 7 are parked.
    const added = await q.addMany(Array.from({ length: 8 }, (_, i) => ({ data: i, opts: { group: "g" } })));
    const order: number[] = [];
    worker<number, number>(
      name,
      async (job) => {
        order.push(job.data);
        return job.data;
      },
      { concurrency: 8, groups: { concurrency: 1 } },
    );
    for (const { id } of added) await q.result(id, { timeoutMs: 10_000 });
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});
