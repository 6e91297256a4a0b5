import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { aRunningInGroup, gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-cancel");

/**
 * A group's free slot is handed to its oldest waiter, which leaves the group's wait. Cancelled before it starts, that
 * job must hand the slot on: nothing else would (no job of the group runs, so no outcome releases a slot).
 */
describe("a job handed its group's free slot, cancelled before it starts", () => {
  const made = onSharedServer(prefix);
  const { worker, queue } = made;
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // reads the group's wait, outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());

  for (const priority of [0, 5]) {
    it(`priority ${priority}: the group's next waiter runs`, async () => {
      const name = `handed-${priority}`;
      const { q, release, started } = await aRunningInGroup(made, name);
      await q.add("b", { id: "b", group: "g", priority });
      await q.add("c", { id: "c", group: "g", priority });
      const gwait = `${prefix}:queue:{${name}}:gwait`;
      await waitUntil("b and c wait for the group's slot", async () => (await admin.zcard(gwait)) === 2, 10_000);
      await q.pause(); // nothing starts: a's end hands its slot to b, which then waits outside the group's wait
      release.open();
      expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a");
      await waitUntil("b handed the slot", async () => (await admin.zcard(gwait)) === 1, 10_000);
      expect(await q.cancel("b")).toBe(true);
      await q.resume();
      expect(await q.result("c", { timeoutMs: 10_000 })).toBe("c");
      expect(started).toEqual(["a", "c"]);
    });
  }

  it("limit 2, one still running: the fetch that drops the cancelled job's entry hands the free slot on", async () => {
    const name = "handed-limit-2";
    const q = queue<string, string>(name);
    const releaseA1 = gate();
    const releaseA2 = gate();
    const started: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        started.push(job.id);
        if (job.id === "a1") await releaseA1.promise;
        if (job.id === "a2") await releaseA2.promise;
        return job.id;
      },
      { concurrency: 4, groups: { concurrency: 2 } },
    );
    await q.add("a1", { id: "a1", group: "g" });
    await q.add("a2", { id: "a2", group: "g" });
    await waitUntil("a1 and a2 run", () => started.includes("a1") && started.includes("a2"), 10_000);
    await q.add("b", { id: "b", group: "g" });
    await q.add("c", { id: "c", group: "g" });
    const gwait = `${prefix}:queue:{${name}}:gwait`;
    await waitUntil("b and c wait for the group's slot", async () => (await admin.zcard(gwait)) === 2, 10_000);
    await q.pause();
    releaseA1.open();
    expect(await q.result("a1", { timeoutMs: 10_000 })).toBe("a1");
    await waitUntil("b handed the slot", async () => (await admin.zcard(gwait)) === 1, 10_000);
    expect(await q.cancel("b")).toBe(true); // a2 still runs: the group is not idle
    await q.resume();
    // c runs while a2 still holds the other slot.
    expect(await q.result("c", { timeoutMs: 10_000 })).toBe("c");
    expect(started).not.toContain("b");
    releaseA2.open();
    expect(await q.result("a2", { timeoutMs: 10_000 })).toBe("a2");
  });

  for (const priority of [0, 5]) {
    it(`priority ${priority}: a second slot handed while one waits for a worker keeps its place in the line`, async () => {
      // a runs; b, c, d wait for the slot; x (delayed) waits too. Paused, a's end hands the slot to b; the cancel of x
      // (a waiting job of a group that runs nothing) hands one to c as well, not knowing of b's. When the queue
      // resumes, b starts and c, over the limit, must go back to its own place in the line, ahead of d.
      const name = `handed-twice-${priority}`;
      const { q, release, started } = await aRunningInGroup(made, name);
      for (const id of ["b", "c", "d"]) await q.add(id, { id, group: "g", priority });
      await q.add("x", { id: "x", group: "g", priority, delayMs: 600_000 });
      const gwait = `${prefix}:queue:{${name}}:gwait`;
      await waitUntil("b, c and d wait for the group's slot", async () => (await admin.zcard(gwait)) === 3, 10_000);
      await q.pause();
      release.open();
      expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a");
      await waitUntil("b handed the slot", async () => (await admin.zcard(gwait)) === 2, 10_000);
      expect(await q.cancel("x")).toBe(true);
      expect(await admin.zcard(gwait)).toBe(1); // c handed a slot too
      await q.resume();
      expect(await q.result("d", { timeoutMs: 10_000 })).toBe("d");
      expect(started).toEqual(["a", "b", "c", "d"]);
      // Every hand-off marker was cleared by the fetch that read its job, or by the cancel.
      const fields = await admin.hkeys(`${prefix}:queue:{${name}}:jobs`);
      expect(fields.filter((f) => f.startsWith("j:")).sort()).toEqual(["a", "b", "c", "d", "x"].map((id) => `j:${id}`));
      expect(fields.filter((f) => f.startsWith("h:"))).toEqual([]);
    });
  }
});
