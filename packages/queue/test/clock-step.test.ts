import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-clock-step");
/** How far ahead the clock was before it stepped back (a failover to a replica whose clock is behind, an NTP step). */
const AHEAD_MS = 3_600_000;

/**
 * Redis server time can step back: a failover to a replica whose clock is behind, or a host clock stepped by NTP. What
 * the queue wrote while the clock was ahead keeps its times. The suite's Redis cannot have its clock moved, so each
 * test writes, with an unrestricted connection, what a server whose clock was AHEAD_MS ahead would have written, then
 * goes on with the server's real clock: the clock as it is after the step back.
 */
describe("a queue whose Redis clock stepped back", () => {
  const { queue, worker } = onSharedServer(prefix);
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // writes outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());
  const key = (name: string, kind: string) => `${prefix}:queue:{${name}}:${kind}`;
  const serverMs = async () => {
    const [s, us] = await admin.time();
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
  };

  it("an id freed and added again before the step, then parked for its group's slot after it, still runs", async () => {
    const name = "freed-then-parked";
    const q = queue<string, string>(name);
    const holding = gate();
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(job.id);
        if (job.id === "holder") await holding.promise;
        return job.data;
      },
      { concurrency: 5, groups: { concurrency: 1 } },
    );
    // x runs once, and its id is freed once its result expired (1 s: long enough for result() to read it first on a
    // loaded machine; with 100 ms the result could expire before result() looked, which then found no job).
    await q.add("first", { id: "x", group: "g", resultTtlMs: 1_000 });
    expect(await q.result("x", { timeoutMs: 10_000 })).toBe("first");
    await waitUntil("x's result to expire", async () => (await q.get("x")) === null, 5_000);
    // The clock AHEAD_MS ahead: the ready stream's ids follow it (XADD never goes below the stream's last id).
    const ahead = (await serverMs()) + AHEAD_MS;
    await admin.xadd(key(name, "ready"), `${ahead}-0`, "i", "");
    await admin.xdel(key(name, "ready"), `${ahead}-0`);
    await q.add("hold", { id: "holder", group: "g" });
    await waitUntil("the holder to take the group's slot", () => runs.length === 2, 5_000);
    // Paused: no fetch reads x's new entry before the next line has made the add what the clock ahead made it.
    await q.pause();
    expect(await q.add("second", { id: "x", group: "g" })).toEqual({ id: "x", duplicate: false });
    // The add that freed x ran on the clock ahead: its record of when it freed the id is that clock's time.
    await admin.hset(key(name, "jobs"), "s:x", String(ahead));
    await q.resume();
    // After the step back, a fetch reads x's entry and parks it (the holder has the slot); the slot then frees.
    await waitUntil("x to wait for the group's slot", async () => (await admin.zcard(key(name, "gwait"))) === 1, 5_000);
    holding.open();
    expect(await q.result("x", { timeoutMs: 5_000 })).toBe("second");
    expect(runs).toEqual(["x", "holder", "x"]);
  });

  it("a job parked for its group's slot before the step keeps its place ahead of the jobs parked after it", async () => {
    const name = "parked-across-step";
    const q = queue<string, string>(name);
    const holding = gate();
    const runs: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push(job.id);
        if (job.id === "holder") await holding.promise;
        return job.data;
      },
      { concurrency: 5, groups: { concurrency: 1 } },
    );
    await q.add("hold", { id: "holder", group: "g" });
    await waitUntil("the holder to run", () => runs.length === 1, 5_000);
    await q.add("a", { id: "a", group: "g" });
    await waitUntil("a to wait for the group's slot", async () => (await admin.zcard(key(name, "gwait"))) === 1, 5_000);
    // a was parked while the clock was ahead: its place in the wait list carries that clock's time.
    const [entry] = await admin.zrange(key(name, "gwait"), "0", "0");
    const ahead = (await serverMs()) + AHEAD_MS;
    await admin
      .multi()
      .zrem(key(name, "gwait"), entry as string)
      .zadd(key(name, "gwait"), 0, `g\0${String(ahead).padStart(15, "0")}000001\0a`)
      .exec();
    await q.add("b", { id: "b", group: "g" });
    await waitUntil("b to wait too", async () => (await admin.zcard(key(name, "gwait"))) === 2, 5_000);
    holding.open();
    expect(await q.result("b", { timeoutMs: 10_000 })).toBe("b");
    expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a");
    expect(runs).toEqual(["holder", "a", "b"]);
  });
});
