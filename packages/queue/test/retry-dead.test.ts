import type { Codec } from "@coordis/queue";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-retry-dead");

describe("retryDead after a failure that is not retried", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("a job that died because its data could not be decoded gets its full attempts back from retryDead", async () => {
    const name = "undecodable";
    const q = queue<string, string>(name);
    // A worker deployed with a codec that cannot read the data: the job dies at its first attempt, not retried.
    const broken: Codec<string> = {
      encode: (v) => v,
      decode: () => {
        throw new Error("unknown format");
      },
    };
    const first = worker<string, string>(name, async (job) => job.data, { codec: broken });
    await q.add("payload", { id: "j", attempts: 4, backoff: { type: "fixed", delayMs: 0 } });
    await expect(q.result("j", { timeoutMs: 10_000 })).rejects.toMatchObject({ code: "ERR_JOB_DEAD", attempts: 1 });
    expect(await q.get("j")).toMatchObject({ state: "dead", attempts: 1, maxAttempts: 4 });
    await first.close();
    // Fixed and redeployed: the dead job is retried with a fresh set of its 4 attempts.
    expect(await q.retryDead("j")).toBe(true);
    const seen: Array<[number, number]> = [];
    worker<string, string>(name, async (job) => {
      seen.push([job.attempt, job.maxAttempts]);
      if (job.attempt < 3) throw new Error(`flaky ${job.attempt}`);
      return job.data;
    });
    await expect(q.result("j", { timeoutMs: 10_000 })).resolves.toBe("payload");
    expect(seen).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
    ]);
    await waitUntil("completed", async () => (await q.get("j"))?.state === "completed", 5_000);
  });
});
