import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-stale-wait");

/**
 * A job cancelled while it waits for its group's slot leaves its place in the group's line until a release passes it.
 * Dropped by retention at once, it leaves nothing telling that place from one of a new job under its id: that job (of
 * another group) must not be handed the slot, or the group's next waiter never starts.
 */
describe("a cancelled waiter dropped by retention, its id added again", () => {
  const { worker, queue } = onSharedServer(prefix);
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // reads the group's wait, outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());

  for (const newJob of ["running", "completed"] as const) {
    it(`the new job of that id (another group, ${newJob}) does not take the freed slot: the group's next waiter runs`, async () => {
      const name = `stale-${newJob}`;
      // retention.completed 0: a cancelled job is dropped at once, its id free again.
      const q = queue<string, string>(name, { retention: { completed: 0 } });
      const gates = new Map([
        ["a", gate()],
        ["b", gate()],
      ]);
      if (newJob === "completed") gates.delete("b");
      const started: string[] = [];
      worker<string, string>(
        name,
        async (job) => {
          started.push(job.id);
          await gates.get(job.id)?.promise;
          return job.id;
        },
        { concurrency: 5, groups: { concurrency: 1 } },
      );
      await q.add("a", { id: "a", group: "g" });
      await waitUntil("a runs", () => started.includes("a"), 10_000);
      await q.add("b", { id: "b", group: "g" });
      await q.add("c", { id: "c", group: "g" });
      const gwait = `${prefix}:queue:{${name}}:gwait`;
      await waitUntil("b and c wait for the group's slot", async () => (await admin.zcard(gwait)) === 2, 10_000);
      expect(await q.cancel("b")).toBe(true);
      expect(await q.get("b")).toBeNull();
      await q.add("b", { id: "b", group: "h" });
      await waitUntil("the new b runs", () => started.filter((id) => id === "b").length === 1, 10_000);
      if (newJob === "completed") expect(await q.result("b", { timeoutMs: 10_000 })).toBe("b");
      gates.get("a")?.open();
      expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a");
      expect(await q.result("c", { timeoutMs: 10_000 })).toBe("c");
      expect(started).toEqual(["a", "b", "c"]);
      gates.get("b")?.open();
    });
  }
});
