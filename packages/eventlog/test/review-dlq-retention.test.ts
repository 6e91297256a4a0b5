import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("eldlqretention");

// The dead-letter stream keeps every dead letter until the application removes it: the log's retention (maxLen,
// maxAgeMs) does not apply to it. The README shows how to bound it; the commands it names (XDEL, XTRIM on the
// `:dlq` key) are within the Coordis ACL user's rights.
describe("dead-letter stream retention", () => {
  const clients = sharedClients();

  it("is not trimmed by the log's maxLen; XDEL and XTRIM on keys.dlq bound it as the README says", async () => {
    const log = new EventLog<number>(clients.redis, "dlq-retention", { prefix, maxLen: 10 });
    const consumer = log.group("g", { consumer: "c" }).consume(
      () => {
        throw new Error("poison");
      },
      { maxDeliveries: 1, blockMs: 100 },
    );
    try {
      for (let i = 0; i < 5; i++) await log.append(i);
      await waitUntil(
        `5 dead letters (${consumer.stats().deadLettered})`,
        () => consumer.stats().deadLettered === 5,
        10_000,
      );
    } finally {
      await consumer.stop();
    }
    // The log's retention trims the log, not its dead letters.
    for (let i = 5; i < 500; i++) await log.append(i);
    expect(await log.length()).toBeLessThan(500);
    const dead = await log.deadLetters();
    expect(dead.map((d) => d.data)).toEqual([0, 1, 2, 3, 4]);

    // Delete the dead letters dealt with, as the least-privileged user Coordis runs as.
    const [first, second] = dead;
    expect(await clients.redis.xdel(log.keys.dlq, first?.id as string, second?.id as string)).toBe(2);
    expect((await log.deadLetters()).map((d) => d.data)).toEqual([2, 3, 4]);
    // Or cap its length (exact here; "~" in production).
    expect(await clients.redis.xtrim(log.keys.dlq, "MAXLEN", 1)).toBe(2);
    expect((await log.deadLetters()).map((d) => d.data)).toEqual([4]);
  });
});
