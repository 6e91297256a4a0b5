import type { CoordisEvent, OperationEvent } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-stalled-worker");

/** Blocks the event loop for `ms` (CPU-bound work, a long GC pause): no timer, no reply is handled meanwhile. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // stall
  }
}

describe("a worker whose event loop was blocked past its leases", () => {
  const { worker, queue } = onSharedServer(prefix);

  it("starts no handler of a delivery whose lease passed before the handler could start", async () => {
    const name = "late-start";
    const q = queue<string, string>(name);
    const starts: string[] = [];
    worker<string, string>(
      name,
      async (job) => {
        starts.push(`${job.id}#${job.attempt}`);
        // The first delivery of a blocks the loop past the lease of every job of its fetch.
        if (job.id === "a" && job.attempt === 1) stall(1_600);
        return `${job.id} done`;
      },
      { concurrency: 2, leaseMs: 1_000 },
    );
    // One call: one fetch brings both, a first.
    await q.addMany([
      { data: "a", opts: { id: "a", attempts: 3, backoff: { type: "fixed", delayMs: 0 } } },
      { data: "b", opts: { id: "b", attempts: 3, backoff: { type: "fixed", delayMs: 0 } } },
    ]);
    expect(await q.result("a", { timeoutMs: 10_000 })).toBe("a done");
    expect(await q.result("b", { timeoutMs: 10_000 })).toBe("b done");
    // b's first delivery was past its lease once a's handler let the loop go on: the job may run elsewhere already,
    // so its handler never started; its attempt ended as a lost lease's does.
    expect(starts.filter((s) => s.startsWith("b"))).toEqual(["b#2"]);
    expect(await q.get("b")).toMatchObject({ state: "completed", attempts: 2 });
  }, 30_000);

  it("records no result of a handler that returned past its lease, also when no other delivery reclaimed the job", async () => {
    const name = "late-return";
    const q = queue<string, string>(name);
    const outcomes: string[] = [];
    const lost: unknown[] = [];
    worker<string, string>(
      name,
      async (job) => {
        // Returns at once after blocking the loop past its lease: the lease keeper has had no turn to learn it.
        if (job.attempt === 1) stall(1_600);
        return `done #${job.attempt}`;
      },
      {
        // Two slots: the worker's fetch loop waits on its blocking connection, so no fetch of this worker reclaims
        // the expired lease before the outcome reaches Redis.
        concurrency: 2,
        leaseMs: 1_000,
        observer: {
          onOperation: (op: OperationEvent) => void (op.op === "process" && outcomes.push(op.outcome)),
          onEvent: (e: CoordisEvent) => void (e.type === "lease-lost" && lost.push(e.attributes?.reason)),
        },
      },
    );
    const { id } = await q.add("a", { attempts: 3, backoff: { type: "fixed", delayMs: 0 } });
    expect(await q.result(id, { timeoutMs: 10_000 })).toBe("done #2");
    expect(outcomes).toEqual(["retry", "completed"]);
    expect(lost).toEqual(["lease-lost"]);
    expect(await q.get(id)).toMatchObject({ state: "completed", attempts: 2 });
  }, 30_000);
});
