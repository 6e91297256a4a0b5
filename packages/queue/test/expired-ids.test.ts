import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-expired-ids");

describe("an id whose finished job outlived its resultTtlMs", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("a completed job past its resultTtlMs reads as gone, and adding its id again on an idle queue runs it again", async () => {
    const name = "readd-completed";
    const q = queue<string, string>(name);
    const runs: string[] = [];
    worker<string, string>(name, async (job) => {
      runs.push(job.data);
      return job.data;
    });
    expect(await q.add("first", { id: "sync", resultTtlMs: 200 })).toEqual({ id: "sync", duplicate: false });
    expect(await q.result("sync", { timeoutMs: 10_000 })).toBe("first");
    // Nothing else finishes in this queue, so no trim removes the record: only its expiry says it is gone.
    await waitUntil("the result to expire", async () => (await q.get("sync")) === null, 5_000);
    await expect(q.result("sync", { timeoutMs: 1_000 })).rejects.toMatchObject({ code: "ERR_JOB_NOT_FOUND" });
    expect(await q.add("second", { id: "sync", resultTtlMs: 60_000 })).toEqual({ id: "sync", duplicate: false });
    expect(await q.result("sync", { timeoutMs: 10_000 })).toBe("second");
    expect(runs).toEqual(["first", "second"]);
    // The new completion is kept its own resultTtlMs; the id is a duplicate again meanwhile.
    expect(await q.get("sync")).toMatchObject({ state: "completed", result: "second", attempts: 1 });
    expect(await q.add("third", { id: "sync" })).toEqual({ id: "sync", duplicate: true });
    expect((await q.counts()).completed).toBe(1);
  });

  it("a cancelled job past its resultTtlMs reads as gone, and adding its id again (addMany too) creates it", async () => {
    const name = "readd-cancelled";
    const q = queue<string, string>(name);
    await q.addMany([
      { data: "a-old", opts: { id: "a", resultTtlMs: 200, delayMs: 60_000 } },
      { data: "b-old", opts: { id: "b", resultTtlMs: 200 } },
    ]);
    expect(await q.cancel("a")).toBe(true);
    expect(await q.cancel("b")).toBe(true);
    await waitUntil(
      "the cancellations to expire",
      async () => (await q.get("a")) === null && (await q.get("b")) === null,
      5_000,
    );
    const again = await q.addMany([
      { data: "a-new", opts: { id: "a" } },
      { data: "b-new", opts: { id: "b" } },
    ]);
    expect(again.map((r) => r.duplicate)).toEqual([false, false]);
    expect(await q.get("a")).toMatchObject({ state: "waiting", data: "a-new", attempts: 0 });
    expect((await q.counts()).cancelled).toBe(0);
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(`${job.id}:${job.data}`);
        return job.data;
      },
      { concurrency: 2 },
    );
    expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a-new");
    expect(await q.result("b", { timeoutMs: 10_000 })).toBe("b-new");
    // b's first ready entry, left behind by the cancellation, does not run b a second time.
    await waitUntil("nothing waits", async () => (await q.counts()).waiting === 0, 5_000);
    expect(runs.sort()).toEqual(["a:a-new", "b:b-new"]);
  });

  it("an id added again after its cancelled job expired: the earlier job's entry does not start it early", async () => {
    const name = "readd-no-early";
    const q = queue<string, string>(name);
    // Cancelled while waiting in the ready stream (no worker yet): its entry stays there until a fetch drops it.
    await q.add("old", { id: "x", resultTtlMs: 1 });
    expect(await q.cancel("x")).toBe(true);
    await waitUntil("the cancelled job to expire", async () => (await q.get("x")) === null, 5_000);
    const added = Date.now();
    expect(await q.add("new", { id: "x", delayMs: 1_500 })).toEqual({ id: "x", duplicate: false });
    let startedAt = 0;
    worker<string, string>(name, async (job) => {
      startedAt = Date.now();
      return job.data;
    });
    expect(await q.result("x", { timeoutMs: 10_000 })).toBe("new");
    expect(startedAt - added).toBeGreaterThanOrEqual(1_400); // its delay, not at once through the old entry
  });

  it("a completed job within its resultTtlMs, and a dead job, stay duplicates", async () => {
    const name = "still-kept";
    const q = queue<string, string>(name);
    worker<string, string>(name, async (job) => {
      if (job.data === "fail") throw new Error("no");
      return job.data;
    });
    await q.add("ok", { id: "kept" });
    await q.add("fail", { id: "dead", attempts: 1 });
    expect(await q.result("kept", { timeoutMs: 10_000 })).toBe("ok");
    await expect(q.result("dead", { timeoutMs: 10_000 })).rejects.toMatchObject({ code: "ERR_JOB_DEAD" });
    expect((await q.add("x", { id: "kept" })).duplicate).toBe(true);
    expect((await q.add("x", { id: "dead" })).duplicate).toBe(true);
    expect(await q.get("kept")).toMatchObject({ state: "completed", data: "ok" });
    expect(await q.get("dead")).toMatchObject({ state: "dead", data: "fail" });
  });
});

// Retention (here `completed: 0`, which keeps no cancelled job either) drops a cancelled job with everything the
// queue knew of it, while the entry it waited on (the ready stream, or its group's wait list) stays until a fetch or a
// group's release reaches it: the same id added again must not start early through that entry.
describe("an id added again after retention dropped its cancelled job", () => {
  const { worker, queue } = onSharedServer(`${prefix}-retention`);

  it("the earlier job's ready entry starts neither a delayed job nor a job of priority 1-9 ahead of its turn", async () => {
    const name = "retention-ready";
    const q = queue<string, string>(name, { retention: { completed: 0 } });
    // Cancelled while waiting in the ready stream (no worker yet): dropped at once, its entries stay.
    await q.add("old", { id: "late" });
    await q.add("old", { id: "low" });
    expect(await q.cancel("late")).toBe(true);
    expect(await q.cancel("low")).toBe(true);
    expect(await q.get("late")).toBeNull();
    expect(await q.add("new", { id: "late", delayMs: 60_000 })).toEqual({ id: "late", duplicate: false });
    expect(await q.add("new", { id: "low", priority: 9 })).toEqual({ id: "low", duplicate: false });
    await q.add("urgent", { id: "high", priority: 1 });
    const order: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        order.push(job.id);
        return job.data;
      },
      { concurrency: 1 },
    );
    expect(await q.result("low", { timeoutMs: 10_000 })).toBe("new");
    expect(order).toEqual(["high", "low"]);
    expect(await q.get("late")).toMatchObject({ state: "delayed", attempts: 0 });
  });

  it("the earlier job's place in its group's wait list does not start a delayed job of the same id", async () => {
    const name = "retention-gwait";
    const q = queue<string, string>(name, { retention: { completed: 0 } });
    const holding = gate();
    const order: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        order.push(job.id);
        if (job.id === "holder") await holding.promise;
        return job.data;
      },
      { concurrency: 5, groups: { concurrency: 1 } },
    );
    await q.add("hold", { id: "holder", group: "g" });
    await waitUntil("the holder to run", () => order.length === 1, 5_000);
    // Waits for the group's only slot, then is cancelled (and dropped): its place in the wait list stays.
    await q.add("old", { id: "a", group: "g" });
    await waitUntil("a to wait for the group", async () => (await q.get("a"))?.state === "waiting", 5_000);
    await q.add("next", { id: "next", group: "g" });
    expect(await q.cancel("a")).toBe(true);
    expect(await q.add("new", { id: "a", group: "g", delayMs: 60_000 })).toEqual({ id: "a", duplicate: false });
    holding.open();
    // The holder's slot passes over the earlier a's place to the next waiter.
    expect(await q.result("next", { timeoutMs: 10_000 })).toBe("next");
    expect(order).toEqual(["holder", "next"]);
    expect(await q.get("a")).toMatchObject({ state: "delayed", attempts: 0 });
  });
});
