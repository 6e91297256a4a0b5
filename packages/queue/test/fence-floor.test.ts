import { connect, type RedisClient } from "@coordis/core";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-fence");

/**
 * A failover to a replica that the last fetches had not reached (replication is asynchronous) leaves the partition's
 * fence counter behind the fences already handed out. Emulated here by setting the counter back by hand: the next
 * delivery's fence must still be above every earlier one, or a stale worker's completion or effect would pass the
 * fence checks of the new delivery.
 */
describe("queue fences when the counter went back", () => {
  const { queue, worker } = onSharedServer(prefix);
  let admin: RedisClient;
  beforeAll(() => {
    admin = connect(inject("coordisAdminRedisUrl")); // HSET on the meta hash is outside the queue's ACL rules
  });
  afterAll(() => admin.disconnect());

  it("the next delivery's fence is above every earlier one", async () => {
    const name = "floor";
    const q = queue<number>(name);
    const fences = new Map<number, number>();
    worker<number, void>(
      name,
      async (job) => {
        fences.set(job.data, job.fence);
      },
      { concurrency: 1 },
    );
    for (let i = 0; i < 3; i++) await q.result((await q.add(i)).id, { timeoutMs: 10_000 });
    // The counter as a replica that missed every fetch would have it.
    await admin.hset(`${prefix}:queue:{${name}}:meta`, "f", "0");
    await q.result((await q.add(3)).id, { timeoutMs: 10_000 });
    await waitUntil("4 deliveries", () => fences.size === 4, 10_000);
    const seen = [0, 1, 2, 3].map((i) => fences.get(i) as number);
    for (let i = 1; i < seen.length; i++) expect(seen[i], JSON.stringify(seen)).toBeGreaterThan(seen[i - 1] as number);
  });
});
