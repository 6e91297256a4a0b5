import { setTimeout as sleep } from "node:timers/promises";
import { type CoordisEvent, connect, type RedisClient } from "@coordis/core";
import { Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-schedule-unreadable");

/** A client of its own that counts the schedule reads (the schedule-due script, whose first key is `schedz`). */
function countingClient(schedz: string): { client: RedisClient; looks: () => number } {
  const client = connect(inject("coordisRedisUrl"));
  let looks = 0;
  const send = client.sendCommand.bind(client);
  client.sendCommand = ((command: { name: string; args: unknown[] }, ...rest: unknown[]) => {
    if (/^eval/i.test(command.name) && String(command.args[2]) === schedz) looks++;
    return (send as (...a: unknown[]) => unknown)(command, ...rest);
  }) as typeof client.sendCommand;
  return { client, looks: () => looks };
}

describe("a stored schedule this version cannot compute the next run of", () => {
  const { worker, queue, redis, onClose } = onSharedServer(prefix);

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

  it("150 unreadable due schedules (corrupt or foreign writes) are read once a second, not in a loop, and a good schedule behind them still fires", async () => {
    const name = "unreadable-many";
    const q = queue<string, string>(name);
    await q.schedule("good", { everyMs: 60_000 }, "good");
    const sched = `${prefix}:queue:{${name}}:sched`;
    const schedz = `${prefix}:queue:{${name}}:schedz`;
    // Half not JSON at all, half JSON of another shape; every one due before the good schedule.
    const writes = redis().pipeline();
    for (let i = 0; i < 150; i++) {
      writes.hset(sched, `bad-${i}`, i % 2 === 0 ? `{not json ${i}` : JSON.stringify({ other: i }));
      writes.zadd(schedz, i + 1, `bad-${i}`);
    }
    writes.zadd(schedz, 1_000, "good");
    await writes.exec();
    const { client, looks } = countingClient(schedz);
    const events: CoordisEvent[] = [];
    const w = new Worker<string, string>(client, name, async (job) => job.data, {
      prefix,
      observer: { onEvent: (e: CoordisEvent) => void events.push(e) },
    });
    onClose(async () => {
      await w.close({ timeoutMs: 1_000 });
      client.disconnect();
    });
    await waitUntil("the scheduler's first look", () => looks() > 0, 5_000);
    // A rate, measured over a second of the worker's life: a look a second (a page of 100 and the rest), where a
    // loop without a pause makes thousands.
    const before = looks();
    await sleep(1_000);
    expect(looks() - before).toBeLessThanOrEqual(8);
    await waitUntil(
      "the good schedule fired",
      () => events.some((e) => e.type === "schedule-fired" && e.attributes?.schedule === "good"),
      5_000,
    );
    await expect(q.result("{schedule:good}1000", { timeoutMs: 5_000 })).resolves.toBe("good");
    expect(events.some((e) => e.type === "schedule-error" && e.attributes?.schedule === "bad-0")).toBe(true);
    expect(events.some((e) => e.type === "schedule-error" && e.attributes?.schedule === "bad-149")).toBe(true);
  });

  it("a stored schedule whose job options are corrupt is reported with its name, makes no job, and the due schedules after it still fire", async () => {
    const name = "corrupt-options";
    const q = queue<string, string>(name);
    await q.schedule("good", { everyMs: 60_000 }, "good");
    const sched = `${prefix}:queue:{${name}}:sched`;
    const schedz = `${prefix}:queue:{${name}}:schedz`;
    const stored = JSON.parse(String(await redis().hget(sched, "good"))) as { spec: unknown; job: unknown[] };
    // The right shape, but a priority the add script refuses (it would fail the fire script on every look).
    const job = [...stored.job];
    job[2] = "high";
    await redis().hset(sched, "corrupt", JSON.stringify({ spec: stored.spec, job }));
    await redis().zadd(schedz, 1, "corrupt", 2, "good");
    const events: CoordisEvent[] = [];
    worker<string, string>(name, async (j) => j.data, {
      schedules: true,
      observer: { onEvent: (e: CoordisEvent) => void events.push(e) },
    });
    await waitUntil(
      "the good schedule fired",
      () => events.some((e) => e.type === "schedule-fired" && e.attributes?.schedule === "good"),
      5_000,
    );
    await expect(q.result("{schedule:good}2", { timeoutMs: 5_000 })).resolves.toBe("good");
    expect(events.some((e) => e.type === "schedule-error" && e.attributes?.schedule === "corrupt")).toBe(true);
    expect(await q.get("{schedule:corrupt}1")).toBeNull();
  });
});
