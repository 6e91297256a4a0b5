import { InvalidArgumentError } from "@coordis/core";
import { MAX_SCHEDULE_NAME_BYTES, Queue, Worker } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-names");

/** The argument an InvalidArgumentError names, or what else `call` did. */
function argumentOf(call: () => unknown): string {
  try {
    call();
    return "no error";
  } catch (err) {
    return err instanceof InvalidArgumentError ? err.argument : `other: ${String(err)}`;
  }
}

describe("queue and schedule names", () => {
  const { redis, queue, worker } = onSharedServer(prefix);

  it('refuses a queue name ending in "#" and digits: it is the hash tag of another queue\'s partition', () => {
    const handler = async () => 1;
    expect(argumentOf(() => new Queue(redis(), "orders#1", { prefix }))).toBe("name");
    expect(argumentOf(() => new Worker(redis(), "orders#12", handler, { prefix, schedules: false }))).toBe("name");
    expect(() => new Queue(redis(), "orders#1", { prefix })).toThrow(/partition 1 of queue "orders"/);
    // Only the partition suffix is reserved.
    for (const name of ["orders#", "orders#a", "a#1b", "#", "orders-1"]) {
      expect(
        argumentOf(() => queue(name)),
        name,
      ).toBe("no error");
    }
  });

  it("refuses a schedule name with control characters or too long for its jobs' ids, before sending anything", async () => {
    const q = queue<number>("bad-schedules");
    const longest = "é".repeat(MAX_SCHEDULE_NAME_BYTES / 2) + "x".repeat(MAX_SCHEDULE_NAME_BYTES % 2);
    for (const name of ["a\nb", "tab\there", "nul\u0000", `${longest}x`]) {
      await expect(q.schedule(name, { everyMs: 1_000 }, 1), JSON.stringify(name)).rejects.toMatchObject({
        argument: "name",
      });
    }
    expect(await q.unschedule("never-declared")).toBe(false);
    // A schedule declared before names were limited can still be removed.
    expect(await q.unschedule("x".repeat(400))).toBe(false);
  });

  it("the job a schedule of the longest name makes can be read, awaited and its result fetched by its id", async () => {
    const name = "é".repeat(MAX_SCHEDULE_NAME_BYTES / 2) + "x".repeat(MAX_SCHEDULE_NAME_BYTES % 2);
    expect(Buffer.byteLength(name)).toBe(MAX_SCHEDULE_NAME_BYTES);
    const q = queue<number, number>("long-schedule");
    const ran: string[] = [];
    worker<number, number>(
      "long-schedule",
      async (job) => {
        ran.push(job.id);
        return job.data * 2;
      },
      { schedules: true },
    );
    expect(await q.schedule(name, { everyMs: 1_000 }, 21)).toBe(true);
    await waitUntil("the schedule's first job ran", () => ran.length > 0, 10_000);
    const id = ran[0] as string;
    expect(id.startsWith(`{schedule:${name}}`)).toBe(true);
    expect(await q.result(id, { timeoutMs: 10_000 })).toBe(42);
    expect(await q.get(id)).toMatchObject({ id, state: "completed", result: 42 });
    expect(await q.unschedule(name)).toBe(true);
  }, 30_000);
});
