import type { Job, JobLostError } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-races");

describe("queue races on the shared server", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("a job cancelled while it waits for its group's slot does not strand the jobs queued behind it", async () => {
    const name = "gwait-cancel";
    const q = queue<string>(name);
    // Added before any worker runs: the first fetch reads all three, runs a and queues b, c for the group's slot.
    const added = await q.addMany(["a", "b", "c"].map((data) => ({ data, opts: { id: data, group: "g" } })));
    expect(added.map((r) => r.duplicate)).toEqual([false, false, false]);
    const started: string[] = [];
    const release = gate();
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.data);
        if (job.data === "a") await release.promise;
        return job.data;
      },
      { concurrency: 5, groups: { concurrency: 1 } },
    );
    await waitUntil("a runs", () => started.includes("a"), 10_000);
    expect((await q.get("b"))?.state).toBe("waiting");
    expect(await q.cancel("b")).toBe(true);
    release.open();
    await expect(q.result("c", { timeoutMs: 5_000 })).resolves.toBe("c");
    expect(started).toEqual(["a", "c"]);
    expect((await q.get("b"))?.state).toBe("cancelled");
    await waitUntil(
      "group slot free, nothing waiting",
      async () => {
        const c = await q.counts();
        return c.active === 0 && c.waiting === 0 && c.completed === 2;
      },
      5_000,
    );
  });
  it("an id cancelled before any fetch, dropped by retention and added again runs once and leaves its group's slot free", async () => {
    const name = "cancel-readd";
    // Retention keeps one cancelled job: cancelling y drops x's record while x's ready entry is still unread.
    const q = queue<string>(name, { retention: { completed: 1 } });
    const opts = { group: "g" };
    await q.add("x-old", { id: "x", ...opts });
    expect(await q.cancel("x")).toBe(true);
    await q.add("y", { id: "y", ...opts });
    expect(await q.cancel("y")).toBe(true);
    expect(await q.get("x")).toBeNull();
    expect((await q.add("x-new", { id: "x", ...opts })).duplicate).toBe(false);
    await q.add("z", { id: "z", ...opts });
    const started: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        started.push(`${job.id}:${job.data}`);
        return job.data;
      },
      { concurrency: 5, groups: { concurrency: 1 } },
    );
    await expect(q.result("x", { timeoutMs: 5_000 })).resolves.toBe("x-new");
    // z needs the group's only slot, which x must have given back.
    await expect(q.result("z", { timeoutMs: 5_000 })).resolves.toBe("z");
    expect(started).toEqual(["x:x-new", "z:z"]);
  });
  it("the re-added id's second ready entry, read while the job runs, does not deliver it again", async () => {
    const name = "cancel-readd-running";
    const q = queue<string>(name, { retention: { completed: 1 } });
    await q.add("x-old", { id: "x" });
    expect(await q.cancel("x")).toBe(true);
    await q.add("y", { id: "y" });
    expect(await q.cancel("y")).toBe(true);
    expect((await q.add("x-new", { id: "x" })).duplicate).toBe(false);
    await q.add("z", { id: "z" });
    const started: string[] = [];
    const lost: string[] = [];
    const release = gate();
    worker<string, string>(
      name,
      async (job) => {
        started.push(`${job.id}:${job.fence}`);
        job.signal.addEventListener("abort", () => lost.push(job.id));
        if (job.id === "x") await release.promise;
        return job.data;
      },
      // Two slots: the first fetch reads x's old entry and y's; x runs while the next fetches read x's new entry and z.
      { concurrency: 2 },
    );
    await expect(q.result("z", { timeoutMs: 5_000 })).resolves.toBe("z");
    release.open();
    await expect(q.result("x", { timeoutMs: 5_000 })).resolves.toBe("x-new");
    expect(started.filter((s) => s.startsWith("x:"))).toHaveLength(1);
    expect(lost).toEqual([]);
  });
  it("cancel racing completion across workers: each job ends either cancelled (cancel answered true) or completed, never both; no group slot is lost", async () => {
    const name = "cancel-race";
    const n = 60;
    const q = queue<number, number>(name);
    const abortedAsCancelled = new Set<string>();
    const handler = async (job: Job<number>) => {
      job.signal.addEventListener("abort", () => {
        if ((job.signal.reason as JobLostError).reason === "cancelled") abortedAsCancelled.add(job.id);
      });
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 400));
      return job.data;
    };
    // Leases of 1 s are renewed every 333 ms: a running job learns its cancellation while its handler runs.
    for (let w = 0; w < 3; w++) worker(name, handler, { concurrency: 8, leaseMs: 1_000, groups: { concurrency: 3 } });
    const added = await q.addMany(
      Array.from({ length: n }, (_, i) => ({ data: i, opts: i % 2 === 0 ? { group: `g${i % 4}` } : {} })),
    );
    const ids = added.map((a) => a.id);
    const cancelled = await Promise.all(
      ids.map(async (id) => {
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 1_000));
        return q.cancel(id);
      }),
    );
    await waitUntil(
      "every job ended",
      async () => {
        const c = await q.counts();
        return c.active === 0 && c.waiting === 0 && c.delayed === 0 && c.completed + c.cancelled === n;
      },
      20_000,
    );
    const states = await Promise.all(ids.map(async (id) => (await q.get(id))?.state));
    ids.forEach((id, i) => {
      expect([id, states[i]]).toEqual([id, cancelled[i] ? "cancelled" : "completed"]);
      if (abortedAsCancelled.has(id)) expect([id, cancelled[i]]).toEqual([id, true]);
    });
    const c = await q.counts();
    expect(c.cancelled).toBe(cancelled.filter(Boolean).length);
    // Every group's slots came back: three more jobs of each group run.
    const more = await q.addMany(
      Array.from({ length: 6 }, (_, i) => ({ data: 1_000 + i, opts: { group: `g${(i * 2) % 4}` } })),
    );
    for (const { id } of more) await expect(q.result(id, { timeoutMs: 5_000 })).resolves.toBeGreaterThanOrEqual(1_000);
  }, 40_000);
});
