import type { OperationEvent, RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("ellatebig");
const MiB = 1024 * 1024;
/** Dead letters of another group, each with an entry of about 1 MiB (the default maxEventBytes). */
const LETTERS = 24;

/** Redis' `used_memory` and `used_memory_peak`, bytes. */
async function memory(admin: RedisClient): Promise<{ used: number; peak: number }> {
  const info = await admin.info("memory");
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, "m").exec(info)?.[1]);
  return { used: field("used_memory"), peak: field("used_memory_peak") };
}

// A holder stalled past claimIdleMs whose handler then succeeds finds the dead letter a claim made of its entry. The
// dead-letter stream holds each dead entry's payload (up to maxEventBytes): finding its own must not read the others,
// which would make Redis build them all inside one script (memory, and every client waiting meanwhile).
describe("a late acknowledgement beside large dead letters", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    admin = server.adminClient();
    await admin.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("removes its dead letter without reading the others: Redis' memory does not rise by their size", async () => {
    const outcomes: string[] = [];
    const observer = { onOperation: (e: OperationEvent) => void (e.op === "consume" && outcomes.push(e.outcome)) };
    const log = new EventLog<string>(redis, "big", { prefix, observer });
    let open: () => void = () => {};
    const stalled = new Promise<void>((r) => {
      open = r;
    });
    const started: string[] = [];
    const holder = log.group("g", { consumer: "holder" }).consume(
      async (e) => {
        started.push(e.data);
        await stalled;
      },
      { claimIdleMs: 600_000 },
    );
    try {
      const { id } = await log.append("late");
      await waitUntil("the holder's handler started", () => started.length === 1, 5_000);
      // Recent dead letters of another group, payloads near the size limit, sent one at a time.
      const big = JSON.stringify("x".repeat(MiB - 16));
      for (let i = 0; i < LETTERS; i++) {
        await admin.xadd(
          log.keys.dlq,
          "*",
          ...["id", `1-${i}`, "group", "other", "consumer", "c", "claimedBy", "b", "deliveries", "3"],
          ...["error", "not acknowledged", "d", big],
        );
      }
      const other = new EventLog<string>(redis, "big", { prefix })
        .group("g", { consumer: "claimer" })
        .consume(() => {}, { claimIdleMs: 50, claimIntervalMs: 20, blockMs: 20, maxDeliveries: 1 });
      try {
        // (XLEN: reading the dead letters here would raise Redis' memory peak by their size.)
        await waitUntil("the claim dead-lettered the entry", async () => (await admin.xlen(log.keys.dlq)) > LETTERS);
      } finally {
        await other.stop();
      }
      const before = await memory(admin);
      open();
      await waitUntil("the holder's acknowledgement settled", () => outcomes.length > 0, 5_000);
      const after = await memory(admin);
      expect(outcomes).toEqual(["acked-late"]);
      const letters = await log.deadLetters({ limit: LETTERS + 5 });
      expect(letters.map((l) => l.entryId)).not.toContain(id);
      expect(letters).toHaveLength(LETTERS);
      // Reading the dead letters would have raised the peak by about LETTERS MiB over what Redis held.
      expect(after.peak).toBeLessThan(Math.max(before.peak, before.used + 6 * MiB));
    } finally {
      open();
      await holder.stop();
    }
  });

  it("a dead letter deleted before the late acknowledgement is not counted: already-acked, the others stay", async () => {
    const outcomes: string[] = [];
    const observer = { onOperation: (e: OperationEvent) => void (e.op === "consume" && outcomes.push(e.outcome)) };
    const log = new EventLog<string>(redis, "deleted", { prefix, observer });
    let open: () => void = () => {};
    const stalled = new Promise<void>((r) => {
      open = r;
    });
    const started: string[] = [];
    const holder = log.group("g", { consumer: "holder" }).consume(
      async (e) => {
        started.push(e.data);
        await stalled;
      },
      { claimIdleMs: 600_000 },
    );
    try {
      const { id } = await log.append("late");
      await waitUntil("the holder's handler started", () => started.length === 1, 5_000);
      const other = new EventLog<string>(redis, "deleted", { prefix })
        .group("g", { consumer: "claimer" })
        .consume(() => {}, { claimIdleMs: 50, claimIntervalMs: 20, blockMs: 20, maxDeliveries: 1 });
      try {
        await waitUntil("the claim dead-lettered the entry", async () => (await log.deadLetters()).length === 1);
      } finally {
        await other.stop();
      }
      // Someone dealt with the dead letter already, and another one came meanwhile.
      const [letter] = await log.deadLetters();
      expect(await admin.xdel(log.keys.dlq, letter?.id as string)).toBe(1);
      await admin.xadd(log.keys.dlq, "*", "id", id, "group", "g", "consumer", "x", "error", "e", "d", '"late"');
      open();
      await waitUntil("the holder's acknowledgement settled", () => outcomes.length > 0, 5_000);
      expect(outcomes).toEqual(["already-acked"]);
      expect(holder.stats()).toMatchObject({ acked: 0, ackedLate: 0 });
      expect((await log.deadLetters()).map((l) => [l.entryId, l.consumer])).toEqual([[id, "x"]]);
      expect(await admin.xlen(log.keys.deadLetterIndex)).toBe(0);
    } finally {
      open();
      await holder.stop();
    }
  });
});
