import type { CoordisEvent } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterEach, describe, expect, it } from "vitest";
import { nextRunAfter } from "../src/schedules.js";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-schedule-cron-zone");

// Replicas of one fleet may run in other time zones (hosts, containers without TZ, developers' machines). A cron
// pattern declared without `tz` must mean the same run times to every one of them: the declaring replica stores the
// first run time, and whichever worker fires a run computes the next one.
describe("a cron schedule without tz", () => {
  const { worker, queue, redis } = onSharedServer(prefix);
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  /** The stored next run time of schedule `name` of queue `queueName`. */
  async function runAt(queueName: string, name: string): Promise<Date> {
    const score = await redis().zscore(`${prefix}:queue:{${queueName}}:schedz`, name);
    return new Date(Number(score));
  }

  it("runs at the same times whatever the time zone of the replica that declares it", async () => {
    const q = queue<string>("declared");
    for (const tz of ["Asia/Tokyo", "America/New_York", "UTC"]) {
      process.env.TZ = tz;
      await q.unschedule("digest");
      await q.schedule("digest", { cron: "30 8 * * *" }, "digest");
      const at = await runAt("declared", "digest");
      expect({ tz, at: `${at.getUTCHours()}:${at.getUTCMinutes()}` }).toEqual({ tz, at: "8:30" });
    }
  });

  it("goes on at the same times whatever the time zone of the worker that fires a run", async () => {
    const name = "fired";
    const q = queue<string>(name);
    await q.schedule("digest", { cron: "30 8 * * *" }, "digest");
    // Its run comes due (as after a night of waiting); a worker in another zone fires it.
    await redis().zadd(`${prefix}:queue:{${name}}:schedz`, 1, "digest");
    process.env.TZ = "Asia/Tokyo";
    const events: CoordisEvent[] = [];
    worker<string, string>(name, async (job) => job.data, {
      schedules: true,
      observer: { onEvent: (e: CoordisEvent) => void events.push(e) },
    });
    await waitUntil("the run was fired", () => events.some((e) => e.type === "schedule-fired"), 10_000);
    const at = await runAt(name, "digest");
    expect(`${at.getUTCHours()}:${at.getUTCMinutes()}`).toBe("8:30");
  });
});

describe("a cron schedule's run times across a daylight-saving change of its tz", () => {
  const spec = { cron: "30 2 * * *", tz: "Europe/Paris" };
  const next = (after: string) => new Date(nextRunAfter(spec, Date.parse(after)) as number).toISOString();

  it("a time the clock skips runs at the first moment after the gap", () => {
    // 2026-03-29: Paris goes from 02:00 CET straight to 03:00 CEST (01:00 UTC).
    expect(next("2026-03-28T23:00:00Z")).toBe("2026-03-29T01:00:00.000Z");
    expect(next("2026-03-29T01:00:00Z")).toBe("2026-03-30T00:30:00.000Z");
  });

  it("a time of day the clock passes twice runs once, at its first pass", () => {
    // 2026-10-25: Paris passes 02:00-03:00 twice, first in CEST (00:00-01:00 UTC), then in CET (01:00-02:00 UTC).
    expect(next("2026-10-24T23:00:00Z")).toBe("2026-10-25T00:30:00.000Z");
    // After the first 02:30, also from inside the repeated hour (a worker that comes back then): the next day.
    expect(next("2026-10-25T00:30:00Z")).toBe("2026-10-26T01:30:00.000Z");
    expect(next("2026-10-25T01:15:00Z")).toBe("2026-10-26T01:30:00.000Z");
  });
});
