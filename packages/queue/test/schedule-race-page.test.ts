import { type CoordisEvent, connect, type RedisClient } from "@coordis/core";
import { Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, inject, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-schedule-race-page");

describe("a due schedule another replica fires while this one reads a page", () => {
  const { queue, redis, onClose } = onSharedServer(prefix);

  it("does not make the next page skip a due schedule: the other 100 fire in the first look", async () => {
    const name = "race-page";
    const q = queue<string, string>(name);
    const schedz = `${prefix}:queue:{${name}}:schedz`;
    const names = Array.from({ length: 101 }, (_, i) => `s-${String(i).padStart(3, "0")}`);
    for (const n of names) await q.schedule(n, { everyMs: 3_600_000 }, n);
    // Every one due, in name order: the first look reads a page of 100, then s-100.
    const due = redis().pipeline();
    for (const [i, n] of names.entries()) due.zadd(schedz, i + 1, n);
    await due.exec();
    // This worker's client counts the looks (the schedule-due script, whose first key is schedz). Before its first
    // fire (of s-000), "another replica" fires s-000: its run time moves on, and this fire finds it moved.
    const client: RedisClient = connect(inject("coordisRedisUrl"));
    const other = redis();
    let looks = 0;
    let raced = false;
    const send = client.sendCommand.bind(client);
    client.sendCommand = ((command: { name: string; args: unknown[] }, ...rest: unknown[]) => {
      const args = command.args.map(String);
      if (/^eval/i.test(command.name) && args[2] === schedz) looks++;
      if (/^eval/i.test(command.name) && !raced && args.includes("s-000") && args[1] === "7") {
        raced = true;
        return other
          .zadd(schedz, Date.now() + 3_600_000, "s-000")
          .then(() => (send as (...a: unknown[]) => unknown)(command, ...rest));
      }
      return (send as (...a: unknown[]) => unknown)(command, ...rest);
    }) as typeof client.sendCommand;
    const firedAtLook = new Map<string, number>();
    const w = new Worker<string, string>(client, name, async (job) => job.data, {
      prefix,
      observer: {
        onEvent: (e: CoordisEvent) => {
          if (e.type === "schedule-fired") firedAtLook.set(String(e.attributes?.schedule), looks);
        },
      },
    });
    onClose(async () => {
      await w.close({ timeoutMs: 1_000 });
      client.disconnect();
    });
    await waitUntil("every schedule but the raced one fired", () => firedAtLook.size === 100, 10_000);
    expect(raced).toBe(true);
    expect(firedAtLook.has("s-000")).toBe(false);
    // The first page's schedules fired after one read; the second page, the next read, holds s-100. Had the moved
    // s-000 been counted as still due, that read would have skipped s-100, left to the next look a second later.
    // (Reads are counted as sent: a first call of a script the server does not hold yet is sent twice.)
    const firstPage = firedAtLook.get("s-099") as number;
    expect(names.slice(1, 100).every((n) => firedAtLook.get(n) === firstPage)).toBe(true);
    expect(firedAtLook.get("s-100")).toBe(firstPage + 1);
  });
});
