import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-fifo");

/**
 * A job that waited for its group's slot keeps its place (FIFO within a priority) when the slot frees: the jobs of
 * its group added after it, still unread in the ready stream behind a backlog, must not take the slot first. They
 * used to, at every release, so a waiting job could wait as long as newer jobs of its group kept coming.
 */
describe("jobs waiting for their group's slot, behind a backlog", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("the job that waited starts first when the slot frees, then the group's later jobs in the order they were added", async () => {
    const name = "backlog";
    const q = queue<string, string>(name);
    const gwait = `${prefix}:queue:{${name}}:gwait`;
    const started: string[] = [];
    const holds = new Map([
      ["A", gate()],
      ["X", gate()],
    ]);
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        await holds.get(job.id)?.promise;
        return job.id;
      },
      { concurrency: 2, groups: { concurrency: 1 } },
    );
    // A of group g runs; B of g, added after it, waits for g's slot.
    await q.add("A", { id: "A", group: "g" });
    await waitUntil("A to run", () => started.includes("A"), 5_000);
    await q.add("B", { id: "B", group: "g" });
    await waitUntil("B to wait for g's slot", async () => (await redis().zcard(gwait)) === 1, 5_000);
    // X of another group takes the worker's second slot; then a backlog: jobs of other groups and later jobs of g.
    await q.add("X", { id: "X", group: "h" });
    await waitUntil("X to run", () => started.includes("X"), 5_000);
    for (const i of [1, 2, 3]) {
      await q.add(`Y${i}`, { id: `Y${i}`, group: `h${i}` });
      await q.add(`C${i}`, { id: `C${i}`, group: "g" });
    }
    holds.get("A")?.open();
    await expect(q.result("B", { timeoutMs: 10_000 })).resolves.toBe("B");
    holds.get("X")?.open();
    await expect(q.result("C3", { timeoutMs: 10_000 })).resolves.toBe("C3");
    const ofG = started.filter((id) => id === "A" || id === "B" || id.startsWith("C"));
    expect(ofG).toEqual(["A", "B", "C1", "C2", "C3"]);
  });

  it("jobs parked together in one fetch are released in the order they were added", async () => {
    const name = "parked-together";
    const q = queue<string, string>(name);
    const started: string[] = [];
    const hold = gate();
    // Added before the worker runs: its first fetch reads all of them, runs g0 and parks the rest in one call.
    const ids = ["g0", ...Array.from({ length: 12 }, (_, i) => `g${i + 1}`)];
    await q.addMany(ids.map((id) => ({ data: id, opts: { id, group: "g" } })));
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        if (job.id === "g0") await hold.promise;
        return job.id;
      },
      { concurrency: 20, groups: { concurrency: 1 } },
    );
    await waitUntil("g0 to run", () => started.includes("g0"), 5_000);
    hold.open();
    await expect(q.result(ids.at(-1) as string, { timeoutMs: 10_000 })).resolves.toBe(ids.at(-1));
    expect(started).toEqual(ids);
  });
});
