import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-head-of-line");

describe("jobs queued behind jobs that cannot start yet", () => {
  const { worker, queue } = onSharedServer(prefix);

  // blockMs 20 s: a worker that idled instead of fetching what is waiting would start nothing for 20 s.
  const idleLong = { blockMs: 20_000 };

  it("a job parked for its group's slot does not hold back the jobs behind it", async () => {
    const name = "group-parked";
    const q = queue<string, string>(name);
    // Added before any worker runs: the first fetch (2 slots) reads g1 and g2; g2 is parked, x1 and x2 wait behind.
    await q.addMany(
      ["g1", "g2", "x1", "x2"].map((id) => ({ data: id, opts: { id, group: id[0] === "g" ? "g" : undefined } })),
    );
    const started: string[] = [];
    const release = gate();
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        if (job.id === "g1") await release.promise;
        return job.id;
      },
      { concurrency: 2, groups: { concurrency: 1 }, ...idleLong },
    );
    await waitUntil("x1 and x2 run while g1 holds its group's slot", () => started.includes("x2"), 5_000);
    expect(started).toEqual(["g1", "x1", "x2"]);
    release.open();
    await expect(q.result("g2", { timeoutMs: 5_000 })).resolves.toBe("g2");
  });

  it("ready entries of cancelled jobs do not hold back the jobs behind them", async () => {
    const name = "cancelled-entries";
    const q = queue<string, string>(name);
    await q.addMany(["c1", "c2", "c3", "x1"].map((id) => ({ data: id, opts: { id } })));
    for (const id of ["c1", "c2", "c3"]) expect(await q.cancel(id)).toBe(true);
    const started: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        return job.id;
      },
      { concurrency: 3, ...idleLong },
    );
    await expect(q.result("x1", { timeoutMs: 5_000 })).resolves.toBe("x1");
    expect(started).toEqual(["x1"]);
  });
});
