import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-cancel");

/**
 * A group's free slot is handed to its oldest waiter, which leaves the group's wait. Cancelled before it starts, that
 * job must hand the slot on: nothing else would (no job of the group runs, so no outcome releases a slot).
 */
describe("a job handed its group's free slot, cancelled before it starts", () => {
  const { worker, queue } = onSharedServer(prefix);
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // reads the group's wait, outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());

  for (const priority of [0, 5]) {
    it(`priority ${priority}: the group's next waiter runs`, async () => {
      const name = `handed-${priority}`;
      const q = queue<string, string>(name);
      const release = gate();
      const started: string[] = [];
      worker<string, string>(
        name,
        async (job) => {
          started.push(job.id);
          if (job.id === "a") await release.promise;
          return job.id;
        },
        { concurrency: 3, groups: { concurrency: 1 } },
      );
      await q.add("a", { id: "a", group: "g" });
      await waitUntil("a runs", () => started.includes("a"), 10_000);
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
});
