import type { CoordisEvent } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-wide-worker");

describe("a worker of high concurrency", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("keeps the leases of 5,000 running jobs of one partition (more than one renewal script can take)", async () => {
    const name = "wide";
    const n = 5_000;
    const events: CoordisEvent[] = [];
    const q = queue<number, number>(name);
    const finish = gate();
    let started = 0;
    worker<number, number>(
      name,
      async (job) => {
        started++;
        await finish.promise;
        return job.data;
      },
      { concurrency: n, leaseMs: 3_000, observer: { onEvent: (e: CoordisEvent) => void events.push(e) } },
    );
    await q.addMany(Array.from({ length: n }, (_, i) => ({ data: i })));
    await waitUntil("every job to start", () => started === n, 30_000);
    // The earliest lease deadline (server ms) once all run: renewing every lease moves them all past it.
    const leases = `${prefix}:queue:{${name}}:leases`;
    const earliest = async () => Number((await redis().zrange(leases, "0", "0", "WITHSCORES"))[1]);
    const first = await earliest();
    await waitUntil("every lease to be renewed", async () => (await earliest()) > first, 10_000);
    finish.open();
    await waitUntil("every job to complete", async () => (await q.counts()).completed === n, 60_000);
    expect(events.filter((e) => e.type === "lease-lost")).toEqual([]);
    expect((await q.counts()).active).toBe(0);
  }, 120_000);
});
