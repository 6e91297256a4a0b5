import type { CoordisEvent } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-schedule-unreadable");

describe("a stored schedule this version cannot compute the next run of", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("is reported as schedule-error and does not keep the other due schedules of its partition from firing", async () => {
    const name = "unreadable";
    const q = queue<string, string>(name);
    await q.schedule("good", { everyMs: 60_000 }, "good");
    const sched = `${prefix}:queue:{${name}}:sched`;
    const schedz = `${prefix}:queue:{${name}}:schedz`;
    // A declaration written by another version, with a pattern this one's cron parser refuses; due first.
    const stored = JSON.parse(String(await redis().hget(sched, "good"))) as { job: unknown[] };
    await redis().hset(sched, "foreign", JSON.stringify({ spec: { cron: "not a pattern" }, job: stored.job }));
    await redis().zadd(schedz, 1, "foreign", 2, "good");
    const events: CoordisEvent[] = [];
    worker<string, string>(name, async (job) => job.data, {
      schedules: true,
      observer: { onEvent: (e: CoordisEvent) => void events.push(e) },
    });
    await waitUntil(
      "the good schedule fired",
      () => events.some((e) => e.type === "schedule-fired" && e.attributes?.schedule === "good"),
      5_000,
    );
    await expect(q.result("{schedule:good}2", { timeoutMs: 5_000 })).resolves.toBe("good");
    expect(events.some((e) => e.type === "schedule-error" && e.attributes?.schedule === "foreign")).toBe(true);
  });
});
