import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-rate-change");

/**
 * A group's rate state, written by workers of one configuration, read by workers of another: a rule changed, or a
 * rule added, during a rolling deploy. Each test writes what the other configuration's workers would have left (the
 * field "r:<group>" of the groups hash, in @coordis/ratelimit's format), then lets workers of this configuration run.
 */
describe("group rate limits across a change of the rules", () => {
  const { queue, worker } = onSharedServer(prefix);
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // writes outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());
  const groupsKey = (name: string) => `${prefix}:queue:{${name}}:groups`;
  const serverMs = async () => {
    const [s, us] = await admin.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  it("a window made longer: a rejected start keeps the state until the new window ends, not the old one", async () => {
    const name = "longer-window";
    // Workers of the old rules (5 per 300 ms) started 5 jobs of the group 100 ms ago.
    const start = (await serverMs()) - 100;
    const oldExp = start + 300;
    await admin.hset(groupsKey(name), "r:g", `r|fw=${oldExp}:${start}:5`);
    const q = queue<string, string>(name);
    const runs: string[] = [];
    // Workers of the new rules: 5 per minute. The window opened at `start` is full under them too.
    worker<string, string>(
      name,
      async (job) => {
        runs.push(job.id);
        return job.data;
      },
      { concurrency: 5, groups: { rateLimit: [{ name: "r", limit: 5, windowMs: 60_000 }] } },
    );
    await q.add("late", { id: "late", group: "g" });
    // The rejected start moved the state's end to the new window's end.
    await waitUntil(
      "the state's end moved to the new window's end",
      async () => (await admin.hget(groupsKey(name), "r:g")) === `r|fw=${start + 60_000}:${start}:5`,
      5_000,
    );
    // Past the old window's end the job still waits: the state was not dropped as expired.
    await waitUntil("server time past the old window's end", async () => (await serverMs()) > oldExp + 300, 5_000);
    expect(runs).toEqual([]);
    expect(await admin.hget(groupsKey(name), "r:g")).toBe(`r|fw=${start + 60_000}:${start}:5`);
  });

  it("a rule added by newer workers holds while older workers, which do not know it, start jobs", async () => {
    const name = "rule-added";
    // Newer workers (rules shared and added) started 2 jobs of the group: the added rule (2 per minute) is full.
    const start = await serverMs();
    await admin.hset(
      groupsKey(name),
      "r:g",
      `shared|fw=${start + 60_000}:${start}:2;added|fw=${start + 60_000}:${start}:2`,
    );
    const q = queue<string, string>(name);
    const runs: string[] = [];
    // An older worker knows only the shared rule (10 per minute): it starts the next job.
    worker<string, string>(
      name,
      async (job) => {
        runs.push(job.id);
        return job.data;
      },
      { concurrency: 5, groups: { rateLimit: [{ name: "shared", limit: 10, windowMs: 60_000 }] } },
    );
    expect(await q.add("old", { id: "old", group: "g" }).then(() => q.result("old", { timeoutMs: 5_000 }))).toBe("old");
    expect(runs).toEqual(["old"]);
    // Its write kept the added rule's state (still full) beside its own.
    const state = String(await admin.hget(groupsKey(name), "r:g"));
    expect(state.split(";").sort()).toEqual(
      [`added|fw=${start + 60_000}:${start}:2`, `shared|fw=${start + 60_000}:${start}:3`].sort(),
    );
  });
});
