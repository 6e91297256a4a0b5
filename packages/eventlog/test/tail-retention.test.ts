import { connect, type RedisClient } from "@coordis/core";
import { type Entry, EventLog, GapError } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("eltailret");

// A tail of a chained log checks each batch against the trim anchor and the recorded head, read right after the
// batch (XREAD BLOCK cannot run in a script, so not in the same atomic step). Retention may trim past the batch's
// first entry in between: that is retention, not a deletion, and the sound log must not be reported as tampered.
describe("tail of a chained log trimmed by retention between its read and its check", () => {
  let redis: RedisClient;
  let writer: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    writer = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
    writer.disconnect();
  });

  for (const [mode, chain] of [
    ["SHA-1", true],
    ["keyed", { key: Buffer.from("0123456789abcdef0123456789abcdef"), keyId: "k1" }],
  ] as const) {
    it(`${mode}: the oldest entries are yielded as verified; falling behind retention is a GapError`, async () => {
      const name = `trimmed-${mode}`;
      const appender = new EventLog<number>(writer, name, { prefix, chain, maxLen: 10 });
      for (let i = 0; i < 150; i++) await appender.append(i);
      const oldest = (await appender.read({ limit: 1 })).entries[0] as Entry<number>;
      expect(oldest.seq).toBeGreaterThan(1); // trimmed already: the oldest entry is the trim anchor

      // Between the tail's XREAD and its read of the meta hash, appends trim past everything the XREAD returned.
      const client = redis as unknown as { hmget: (...args: unknown[]) => Promise<unknown> };
      const hmget = client.hmget;
      let trimmed = false;
      client.hmget = async function (this: unknown, ...args: unknown[]) {
        if (!trimmed && args.includes("anchor")) {
          trimmed = true;
          for (let i = 150; i < 450; i++) await appender.append(i);
        }
        return hmget.apply(this, args);
      };
      const log = new EventLog<number>(redis, name, { prefix, chain });
      const seen: Entry<number>[] = [];
      let error: unknown;
      try {
        for await (const e of log.tail({ from: "start", batch: 5, blockMs: 50 })) seen.push(e);
      } catch (err) {
        error = err;
      } finally {
        client.hmget = hmget;
      }
      expect(trimmed).toBe(true);
      expect(seen.map((e) => [e.data, e.verified])).toEqual(
        Array.from({ length: 5 }, (_, i) => [oldest.data + i, true]),
      );
      expect(error).toBeInstanceOf(GapError);
    });
  }
});
