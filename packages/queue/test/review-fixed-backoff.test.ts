import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-fixed-backoff");

const HOUR = 60 * 60 * 1000;

describe("a backoff longer than an hour", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  /** The server's clock, ms. */
  async function serverNow(): Promise<number> {
    const [sec, usec] = await redis().time();
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
  }

  it("fixed: the retry is due `delayMs` after the failure, as the option promises ('delayMs every time')", async () => {
    const name = "fixed-2h";
    const q = queue<string>(name, { defaults: { backoff: { type: "fixed", delayMs: 3 * HOUR } } });
    worker<string, string>(name, async () => {
      throw new Error("try again later");
    });
    const own = await q.add("a", { attempts: 2, backoff: { type: "fixed", delayMs: 2 * HOUR } });
    const byDefault = await q.add("b", { attempts: 2 });
    for (const [id, delayMs] of [
      [own.id, 2 * HOUR],
      [byDefault.id, 3 * HOUR],
    ] as const) {
      await waitUntil("the first attempt to fail", async () => (await q.get(id))?.state === "delayed", 10_000);
      const info = await q.get(id);
      const now = await serverNow();
      expect(info?.attempts).toBe(1);
      // Due delayMs after the failure (which happened a moment before `now`), not capped at one hour.
      expect(info?.dueAt).toBeGreaterThan(now + delayMs - 60_000);
      expect(info?.dueAt).toBeLessThanOrEqual(now + delayMs + 1);
    }
  });

  it("exponential: the first retry waits `delayMs` even when it is above the default cap; an explicit cap holds", async () => {
    const name = "exp-2h";
    const q = queue<string>(name);
    worker<string, string>(name, async () => {
      throw new Error("try again later");
    });
    const uncapped = await q.add("a", { attempts: 2, backoff: { type: "exponential", delayMs: 2 * HOUR } });
    const capped = await q.add("b", {
      attempts: 2,
      backoff: { type: "exponential", delayMs: 2 * HOUR, maxDelayMs: 30 * 60 * 1000 },
    });
    for (const [id, delayMs] of [
      [uncapped.id, 2 * HOUR],
      [capped.id, 30 * 60 * 1000],
    ] as const) {
      await waitUntil("the first attempt to fail", async () => (await q.get(id))?.state === "delayed", 10_000);
      const info = await q.get(id);
      const now = await serverNow();
      expect(info?.dueAt).toBeGreaterThan(now + delayMs - 60_000);
      expect(info?.dueAt).toBeLessThanOrEqual(now + delayMs + 1);
    }
  });
});
