import type { RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elreclaimcount");

/** Who `id` is pending for in `group`, and its delivery count, or undefined once it is not pending. */
async function pendingOf(admin: RedisClient, stream: string, group: string, id: string) {
  const rows = (await admin.xpending(stream, group, id, id, 1)) as [string, string, number, number][];
  const row = rows[0];
  return row === undefined ? undefined : { consumer: row[1], deliveries: Number(row[3]) };
}

// A consumer stalled while its handler ran; another consumer took the entry over meanwhile (a delivery) and died, and
// the stalled consumer's claim brought it back (another delivery), starting no second handler. When the running
// handler then fails, its entry has had as many deliveries as Redis counts, not as many as when the handler started:
// at maxDeliveries it is dead-lettered at once, with the handler's error, by the consumer whose handler failed.
describe("a handler failing after its entry was claimed back to it during a stall", () => {
  const clients = sharedClients();

  it("is judged by the deliveries Redis counts: dead-lettered at once with its own error at maxDeliveries", async () => {
    const log = new EventLog<string>(clients.redis, `count-${Date.now()}`, { prefix });
    let fail: (err: Error) => void = () => {};
    const running = new Promise<void>((_resolve, reject) => {
      fail = reject;
    });
    const starts: number[] = [];
    const consumer = log.group("g", { consumer: "p" }).consume(
      async (_e, { deliveries }) => {
        starts.push(deliveries);
        await running;
      },
      { claimIdleMs: 200, maxDeliveries: 3, concurrency: 2 },
    );
    try {
      const { id } = await log.append("poison");
      await waitUntil("the handler started", () => starts.length === 1, 5_000);
      // Taken over by q while p stalled (delivery 2), q died, and p's claim takes it back (delivery 3).
      await clients.admin.call("XCLAIM", log.keys.stream, "g", "q", "0", id);
      await waitUntil(
        "p claimed the entry back",
        async () => (await pendingOf(clients.admin, log.keys.stream, "g", id))?.consumer === "p",
        5_000,
      );
      expect(await pendingOf(clients.admin, log.keys.stream, "g", id)).toEqual({ consumer: "p", deliveries: 3 });
      expect(starts).toEqual([1]);
      fail(new Error("bad payload"));
      await waitUntil("the failure settled", () => consumer.stats().failed === 1, 5_000);
      await waitUntil("dead-lettered", async () => (await log.deadLetters()).length === 1, 5_000);
      const [letter] = await log.deadLetters();
      expect(letter).toMatchObject({ entryId: id, consumer: "p", deliveries: 3, error: "Error: bad payload" });
      expect(letter?.claimedBy).toBeUndefined();
      expect(await pendingOf(clients.admin, log.keys.stream, "g", id)).toBeUndefined();
      expect(consumer.stats()).toMatchObject({ failed: 1, deadLettered: 1 });
      expect(starts).toEqual([1]);
    } finally {
      fail(new Error("end"));
      await consumer.stop();
    }
  });
});
