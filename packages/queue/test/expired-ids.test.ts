import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

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
