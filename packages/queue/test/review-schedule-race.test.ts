import { runScript, runScriptDynamic } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { queueKeys, scheduledJobId } from "../src/keys.js";
import { nextRunAfter, parseStored } from "../src/schedules.js";
import { queueScripts } from "../src/scripts.generated.js";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-schedule");

describe("a schedule changed between a worker's read of its due run and the worker's fire of it", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("the run is made with the new declaration, and the schedule goes on by the new timing", async () => {
    const name = "changed-mid-fire";
    const q = queue<string, string>(name);
    const [k] = queueKeys(prefix, name, 1);
    if (k === undefined) throw new Error("no partition keys");
    expect(await q.schedule("beat", { everyMs: 1_000 }, "old")).toBe(true);
    // No worker yet: wait (server time) until the first run is due, unmade.
    let due: (string | number)[] = [];
    await waitUntil(
      "the first run to be due",
      async () => {
        due = (await runScript(redis(), queueScripts.scheduleDue, [k.schedz, k.sched], [100, 0])).slice(2);
        return due.length === 3;
      },
      5_000,
    );
    // A worker's scheduler has just read the due run (what Scheduler's tick reads, step 1)...
    const [now] = await runScript(redis(), queueScripts.scheduleDue, [k.schedz, k.sched], [100, 0]);
    const dueAt = Number(due[1]);
    const stored = parseStored(String(due[2]));
    if (stored === null) throw new Error("unreadable declaration");
    // ... a replica redeclares the schedule (other data, hourly) while that run is due and not made yet...
    expect(await q.schedule("beat", { everyMs: 3_600_000 }, "new")).toBe(true);
    // ... and the worker fires the run with what it read (step 2, the arguments Scheduler's tick sends).
    const nextAt = nextRunAfter(stored.spec, Math.max(now, dueAt)) as number;
    await runScriptDynamic(
      redis(),
      queueScripts.scheduleFire,
      [k.jobs, k.ready, k.delayed, k.prio, k.wake, k.sched, k.schedz],
      [
        "beat",
        dueAt,
        nextAt,
        scheduledJobId("beat", dueAt),
        String(stored.job[0]),
        stored.job.slice(1).join(" "),
        String(due[2]),
      ],
    );
    // Workers fire what is due from here on.
    const runs: Array<{ at: number; data: string }> = [];
    worker<string, string>(
      name,
      async (job) => {
        runs.push({ at: Number(job.id.slice("{schedule:beat}".length)), data: job.data });
        return job.data;
      },
      { schedules: true },
    );
    await waitUntil("the run", () => runs.length >= 1, 10_000);
    expect(runs[0]).toEqual({ at: dueAt, data: "new" });
    // The next run is on the new declaration's grid (hourly), not a second later.
    const next = Number(await redis().zscore(k.schedz, "beat"));
    expect(next % 3_600_000).toBe(0);
    expect(await q.unschedule("beat")).toBe(true);
  });
});
