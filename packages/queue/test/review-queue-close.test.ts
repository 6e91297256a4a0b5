import { ClosedError } from "@coordis/core";
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
    const { id } = await q.add(21);
    await waitUntil("the job to complete", async () => (await q.get(id))?.state === "completed", 10_000);
    // Closed before any result(): it never opened its subscriber connection.
    await q.close();
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

describe("Queue calls after Queue.close()", () => {
  const { queue } = onSharedServer(prefix);

  it("add(), addMany() and the other changes reject with ClosedError and send nothing; get(), counts() and deadLetters() still answer", async () => {
    const name = "closed-adds";
    const q = queue<number, number>(name);
    await q.add(1, { id: "before" });
    await q.close();
    const rejections = [
      q.add(2, { id: "after" }),
      q.addMany([{ data: 3, opts: { id: "after-many" } }]),
      q.cancel("before"),
      q.schedule("beat", { everyMs: 60_000 }, 4),
      q.unschedule("beat"),
      q.retryDead("before"),
      q.pause(),
      q.resume(),
    ];
    for (const call of rejections) {
      const err = await call.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ClosedError);
      expect(err).toMatchObject({ code: "ERR_CLOSED", what: "Queue" });
    }
    // Nothing reached Redis: read through another Queue of the same name.
    const reader = queue<number, number>(name);
    expect(await reader.get("after")).toBeNull();
    expect(await reader.get("after-many")).toBeNull();
    expect(await reader.get("before")).toMatchObject({ state: "waiting", data: 1 });
    expect(await reader.counts()).toMatchObject({ waiting: 1, paused: false });
    // The closed Queue's reads go on.
    expect(await q.get("before")).toMatchObject({ state: "waiting" });
    expect(await q.counts()).toMatchObject({ waiting: 1 });
    expect((await q.deadLetters()).jobs).toEqual([]);
    await q.close(); // idempotent
  });

  it("adds called before close() are sent: one still waiting for the queue's first check, one in the micro-batch", async () => {
    const name = "closed-in-flight";
    // A new Queue: its first add waits for the partitions check (one round trip) before it reaches the micro-batch.
    const first = queue<number, number>(name);
    const waitingForCheck = first.add(1, { id: "waiting-for-check" });
    const firstClosed = first.close();
    await expect(waitingForCheck).resolves.toEqual({ id: "waiting-for-check", duplicate: false });
    await firstClosed;
    // A checked Queue: the add sits in the micro-batch (sent at the end of the turn) when close() is called.
    const second = queue<number, number>(name);
    await second.add(0, { id: "checked" });
    const batched = second.add(2, { id: "batched" });
    const secondClosed = second.close();
    await expect(batched).resolves.toEqual({ id: "batched", duplicate: false });
    await secondClosed;
    const reader = queue<number, number>(name);
    expect(await reader.get("waiting-for-check")).toMatchObject({ state: "waiting", data: 1 });
    expect(await reader.get("batched")).toMatchObject({ state: "waiting", data: 2 });
  });
});
