import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-retention");

describe("retention against the id's idempotency window (documented in the README)", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("a completed job dropped by retention.completed before its resultTtlMs frees its id: the same id runs again", async () => {
    const name = "retention-window";
    const q = queue<string, string>(name);
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(job.id);
        return job.data;
      },
      { retention: { completed: 2 } },
    );
    for (const id of ["a", "b", "c"]) {
      expect(await q.add(id, { id })).toEqual({ id, duplicate: false });
      await expect(q.result(id, { timeoutMs: 10_000 })).resolves.toBe(id);
    }
    // "a" completed well within its resultTtlMs (24 h), but two later completions pushed it out of the partition's
    // retention: it reads as gone, and adding its id again creates and runs the job again.
    expect(await q.get("a")).toBeNull();
    expect(await q.get("c")).toMatchObject({ state: "completed" });
    expect(await q.add("a-again", { id: "a" })).toEqual({ id: "a", duplicate: false });
    await waitUntil("a runs again", () => runs.filter((id) => id === "a").length === 2, 10_000);
    expect(await q.add("c-again", { id: "c" })).toEqual({ id: "c", duplicate: true });
  });
});
