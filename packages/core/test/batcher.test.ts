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
});
