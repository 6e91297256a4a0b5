import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { gate, onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-group-partitions");

describe("group limits on a partitioned queue", () => {
  const { worker, queue, redis } = onSharedServer(prefix);

  it("jobs of one group whose ids share a {tag} sit in one partition: its concurrency limit holds across workers", async () => {
    const name = "tagged";
    const partitions = 4;
    const q = queue<number, number>(name, { partitions });
    const release = gate();
    let running = 0;
    let peak = 0;
    const handler = async (job: { data: number }) => {
      running++;
      peak = Math.max(peak, running);
      await release.promise;
      running--;
      return job.data;
    };
    const opts = { partitions, concurrency: 5, groups: { concurrency: 1 } };
    worker<number, number>(name, handler, opts);
    worker<number, number>(name, handler, opts);
    const added = await q.addMany(
      Array.from({ length: 6 }, (_, i) => ({ data: i, opts: { id: `{tenant-7}:${i}`, group: "tenant-7" } })),
    );
    const gwaits = Array.from({ length: partitions }, (_, i) => `${prefix}:queue:{${name}#${i}}:gwait`);
    const parked = async () => {
      let n = 0;
      for (const key of gwaits) n += await redis().zcard(key);
      return n;
    };
    // One runs; the 5 others were fetched and parked until the group's slot frees.
    await waitUntil(
      "one runs, five wait for the group's slot",
      async () => running === 1 && (await parked()) === 5,
      10_000,
    );
    release.open();
    for (const { id } of added) await q.result(id, { timeoutMs: 10_000 });
    expect(peak).toBe(1);
  });
});
