import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-review-close");

describe("Queue.result() after Queue.close()", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("looks at the job at once and resolves with the result of a completed job (no RedisUnavailableError: Redis is reachable)", async () => {
    const name = "after-close";
    const q = queue<number, number>(name);
    worker<number, number>(name, async (job) => job.data * 2);
    // Closed before any result(): it never opened its subscriber connection.
    await q.close();
    const { id } = await q.add(21);
    await waitUntil("the job to complete", async () => (await q.get(id))?.state === "completed", 10_000);
    await expect(q.result(id, { timeoutMs: 10_000 })).resolves.toBe(42);
  });

  it("a result() still subscribing when close() is called goes on waiting, and resolves when the job completes", async () => {
    const name = "closed-while-subscribing";
    const q = queue<number, number>(name);
    const { id } = await q.add(4);
    // The call's subscription (on the connection it opens) is not answered yet when close() closes that connection.
    const waiting = q.result(id, { timeoutMs: 10_000 });
    await q.close();
    worker<number, number>(name, async (job) => job.data * 2);
    await expect(waiting).resolves.toBe(8);
  });
});
