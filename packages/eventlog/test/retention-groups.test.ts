import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elretgroups");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

// Retention does not wait for consumer groups (README, "Retention"): what it trims is gone for them too.
describe("retention and consumer groups", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("an entry trimmed before the group read it is never delivered; one trimmed while pending is neither retried nor dead-lettered", async () => {
    const log = new EventLog<number>(redis, name("trimmed"), { prefix, maxLen: 1 });
    const group = log.group("g", { consumer: "c" });
    await group.create();
    // XTRIM MAXLEN ~ removes whole stream nodes (100 entries by default): 250 appends trim the first ones.
    for (let i = 0; i < 250; i++) await log.append(i);
    const kept = (await log.read({ limit: 1 })).entries[0]?.data as number;
    expect(kept).toBeGreaterThan(0);

    const attempts = new Map<number, number>();
    const consumer = group.consume(
      (e) => {
        attempts.set(e.data, (attempts.get(e.data) ?? 0) + 1);
        // The first kept entry always fails: it is retried (never dead-lettered) until the appends below trim it.
        if (e.data === kept) throw new Error("fails");
      },
      { claimIdleMs: 50, claimIntervalMs: 10, blockMs: 10, batch: 100, concurrency: 100, maxDeliveries: 1_000 },
    );
    try {
      await waitUntil("the kept entries were handled", () => attempts.size === 250 - kept);
      for (let i = 250; i < 500; i++) await log.append(i);
      // The newest entry is never trimmed: once it is handled, every entry before it was delivered or trimmed.
      await waitUntil("the newest entry is handled", () => attempts.has(499));
      await waitUntil("nothing is pending any more", async () => (await group.info())?.pending === 0);
    } finally {
      await consumer.stop();
    }
    expect(attempts.has(0)).toBe(false);
    // Trimmed: out of the log and out of the group's pending entries, so never delivered again, nor dead-lettered.
    expect((await log.read({ limit: 1 })).entries[0]?.data).toBeGreaterThan(kept);
    expect(await log.deadLetters()).toEqual([]);
  });
});
