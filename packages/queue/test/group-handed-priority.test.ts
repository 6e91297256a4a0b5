import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { aRunningInGroup, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-handed-priority");

/**
 * A freed slot handed to the group's oldest waiter when that one is of priority 1-9: workers read it after the ready
 * stream, where the group's jobs added later, of priority 0, would take the slot ahead of the group's waiters of
 * priority 0 behind it.
 */
describe("a group's freed slot, its oldest waiter of priority 1-9", () => {
  const made = onSharedServer(prefix);
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // reads the group's wait, outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());

  it("goes to the waiter of priority 0 behind it, not to a job of priority 0 added later: FIFO within each priority", async () => {
    const name = "handed-priority";
    const { q, release, started } = await aRunningInGroup(made, name);
    const gwait = `${prefix}:queue:{${name}}:gwait`;
    await q.add("b", { id: "b", group: "g", priority: 5 });
    await waitUntil("b waits for the group's slot", async () => (await admin.zcard(gwait)) === 1, 10_000);
    await q.add("c", { id: "c", group: "g" });
    await waitUntil("c waits behind b", async () => (await admin.zcard(gwait)) === 2, 10_000);
    await q.pause(); // a's end hands its slot to a waiter, which then waits for a fetch
    release.open();
    expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a");
    await waitUntil("a waiter handed the slot", async () => (await admin.zcard(gwait)) === 1, 10_000);
    await q.add("d", { id: "d", group: "g" });
    await q.resume();
    for (const id of ["b", "c", "d"]) expect(await q.result(id, { timeoutMs: 10_000 })).toBe(id);
    // By priority, then in the order they were added within a priority (d came after c).
    expect(started).toEqual(["a", "c", "d", "b"]);
  });
});
