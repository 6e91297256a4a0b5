import { withDeadline } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { Batcher, type BatchOutcome } from "../src/index.js";

describe("Batcher", () => {
  it("a malformed runner reply fails every caller and leaves no unhandled rejection", { timeout: 5_000 }, async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    try {
      const replies: unknown[] = [null, [undefined, { ok: true, value: 2 }]];
      const batcher = new Batcher<number, number>({ maxSize: 2, maxDelayMs: 0 }, async () => {
        return replies.shift() as ReadonlyArray<BatchOutcome<number>>;
      });
      for (let round = 0; round < 2; round++) {
        const settled = await Promise.allSettled([batcher.add("g", 1), batcher.add("g", 2)]);
        expect(settled[0]?.status, `round ${round}`).toBe("rejected");
        if (round === 0) expect(settled[1]?.status).toBe("rejected");
      }
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", record);
    }
  });

  it("a runner that fails with a value without a string form still fails every caller, with an Error", async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    try {
      // A runner that rejects, then one that throws before sending: both with a thrown value String() refuses.
      const runners = [
        async () => Promise.reject(Object.create(null)),
        () => {
          throw Object.create(null);
        },
      ];
      for (const runner of runners) {
        const batcher = new Batcher<number, number>({ maxSize: 2, maxDelayMs: 0 }, runner as never);
        const settled = await withDeadline(
          Promise.allSettled([batcher.add("g", 1), batcher.add("g", 2)]),
          2_000,
          "every caller of the failed batch to settle",
        );
        for (const s of settled) {
          expect(s.status).toBe("rejected");
          expect((s as PromiseRejectedResult).reason).toBeInstanceOf(Error);
        }
      }
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", record);
    }
  });

  it("a runner that returns its outcomes without a promise settles every caller with them", async () => {
    const runner = (items: readonly number[]) => items.map((n) => ({ ok: true as const, value: n * 10 }));
    const batcher = new Batcher<number, number>({ maxSize: 2, maxDelayMs: 0 }, runner as never);
    const settled = await withDeadline(
      Promise.allSettled([batcher.add("g", 1), batcher.add("g", 2)]),
      2_000,
      "every caller of the batch to settle",
    );
    expect(settled).toEqual([
      { status: "fulfilled", value: 10 },
      { status: "fulfilled", value: 20 },
    ]);
  });
});
