import { connect, type RedisClient } from "@coordis/core";
import { eventlogScripts } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { appendBeforeFastPath } from "./fixtures/append-before-fast-path.js";

const prefix = testPrefix("eldiff");
let n = 0;

// A plain append (no idempotency key, not chained) returns before the script builds any function, with retention
// building only retention's: what it stores and replies must stay what the script did before, append after append.
describe("plain append: the script's own path and the one it had before", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  /** Every entry's fields, the meta hash (but its last id, checked per append) and the length of one log. */
  async function state(base: string) {
    const entries = (await redis.xrange(`${base}:s`, "-", "+")) as [string, string[]][];
    const [seq, head, anchor] = await redis.hmget(`${base}:m`, "seq", "head", "anchor");
    const meta = { seq, head, anchor };
    return { entries, meta, len: await redis.xlen(`${base}:s`) };
  }

  it.each(["0", "0 10 0", "0 1 0", "0 0 86400000", "0 25 86400000"])(
    "mode %s: the same replies, entries, sequence numbers, meta hash and trimming",
    async (mode) => {
      const old = `${prefix}:{old-${++n}}`;
      const now = `${prefix}:{new-${n}}`;
      for (let i = 1; i <= 150; i++) {
        const payload = JSON.stringify({ i, pad: "x".repeat(i % 7) });
        const run = (src: string, base: string) =>
          redis.eval(src, 3, `${base}:s`, `${base}:m`, `${base}:d`, payload, 0, "", mode);
        const a = await run(appendBeforeFastPath, old);
        const b = await run(eventlogScripts.append.source, now);
        expect(typeof a).toBe("string");
        expect(typeof b).toBe("string");
        // Entry ids are server time: each log's reply is its own last entry, recorded as its last id.
        expect(await redis.hget(`${old}:m`, "last")).toBe(a);
        expect(await redis.hget(`${now}:m`, "last")).toBe(b);
      }
      const [before, after] = [await state(old), await state(now)];
      expect(after.len).toBe(before.len);
      expect(after.entries.map(([, f]) => f)).toEqual(before.entries.map(([, f]) => f));
      expect(after.meta).toEqual(before.meta);
      expect(after.meta).toEqual({ seq: "150", head: null, anchor: null });
      expect(await redis.exists(`${now}:d`)).toBe(0);
    },
  );
});
