import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-schedule-half-lost");

// A schedule is kept in two keys: its declaration (the `sched` hash) and its next run time (the `schedz` sorted set).
// Redis can lose one without the other (an allkeys eviction policy evicts keys one by one; a key deleted by hand).
describe("a schedule whose run time was lost while its declaration stayed", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("is restored by declaring it again identically, and fires", async () => {
    const name = "run-time-lost";
    const q = queue<string, string>(name);
    expect(await q.schedule("tick", { everyMs: 1_000 }, "tick")).toBe(true);
    // The run-time key is evicted; the declaration stays.
    await redis().del(`${prefix}:queue:{${name}}:schedz`);
    // Every replica declares its schedules at start: that declaration must bring the schedule back.
    expect(await q.schedule("tick", { everyMs: 1_000 }, "tick")).toBe(true);
    expect(await redis().zscore(`${prefix}:queue:{${name}}:schedz`, "tick")).not.toBeNull();
    const ran: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        ran.push(job.id);
        return job.data;
      },
      { schedules: true },
    );
    await waitUntil("a run of tick ran", () => ran.some((id) => id.startsWith("{schedule:tick}")), 10_000);
    // An identical declaration of a complete schedule still changes nothing.
    expect(await q.schedule("tick", { everyMs: 1_000 }, "tick")).toBe(false);
  });
});
