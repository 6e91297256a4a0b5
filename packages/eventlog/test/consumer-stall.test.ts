import type { RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elstall");

/** A promise and the function that resolves it: a gate handlers wait on until the test opens it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/** Blocks this process' event loop for `ms` (a CPU-bound handler, a long GC pause): the fault under test. */
function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Who `id` is pending for in `group`, and its delivery count, or undefined once it is not pending. */
async function pendingOf(admin: RedisClient, stream: string, group: string, id: string) {
  const rows = (await admin.xpending(stream, group, id, id, 1)) as [string, string, number, number][];
  const row = rows[0];
  return row === undefined ? undefined : { consumer: row[1], deliveries: Number(row[3]) };
}

// A consumer whose event loop stalled longer than claimIdleMs (a CPU-bound handler, a GC pause, SIGSTOP) may find the
// entries it holds idle in Redis when it wakes up. Its own claim must not take back, and start a second time, an entry
// whose handler is still running in it: the handler that runs acknowledges it.
describe("a consumer after a stall longer than claimIdleMs", () => {
  const clients = sharedClients();

  it("does not claim back and start again an entry whose handler still runs in it", async () => {
    const log = new EventLog<string>(clients.redis, `cpu-${Date.now()}`, { prefix });
    const slow = gate();
    const starts: string[] = [];
    const consumer = log.group("g", { consumer: "p" }).consume(
      async (e, { deliveries }) => {
        starts.push(`${e.data}#${deliveries}`);
        if (e.data === "slow") await slow.promise;
        // A CPU-bound handler: the event loop is blocked for three times claimIdleMs.
        else blockEventLoop(900);
      },
      { claimIdleMs: 300, concurrency: 2 },
    );
    try {
      const { id } = await log.append("slow");
      await waitUntil("the slow handler started", () => starts.length === 1, 5_000);
      await log.append("cpu");
      await waitUntil("the CPU-bound handler ran", () => consumer.stats().acked === 1, 5_000);
      // Claims come due every 150 ms after the stall: several of them ran while the slow handler went on.
      await waitUntil(
        "the slow entry refreshed after the stall",
        async () => (await clients.admin.xpending(log.keys.stream, "g", "IDLE", 200, "-", "+", 10)).length === 0,
        5_000,
      );
      const claimsAfter = consumer.stats();
      expect(starts).toEqual(["slow#1", "cpu#1"]);
      expect(claimsAfter.claimed).toBe(0);
      expect(await pendingOf(clients.admin, log.keys.stream, "g", id)).toEqual({ consumer: "p", deliveries: 1 });
      slow.open();
      await waitUntil("both acknowledged", () => consumer.stats().acked === 2, 5_000);
    } finally {
      slow.open();
      await consumer.stop();
    }
  });

  it("an entry taken over meanwhile and claimed back from the consumer that took it is not started twice", async () => {
    const log = new EventLog<string>(clients.redis, `back-${Date.now()}`, { prefix });
    const slow = gate();
    const starts: number[] = [];
    const consumer = log.group("g", { consumer: "p" }).consume(
      async (_e, { deliveries }) => {
        starts.push(deliveries);
        await slow.promise;
      },
      { claimIdleMs: 200, concurrency: 2 },
    );
    try {
      const { id } = await log.append("slow");
      await waitUntil("the handler started", () => starts.length === 1, 5_000);
      // While p was stalled, consumer q reclaimed the entry (as XAUTOCLAIM does), then died: the entry goes idle
      // again, and p's next claim brings it back to p, whose first handler still runs.
      await clients.admin.call("XCLAIM", log.keys.stream, "g", "q", "0", id);
      await waitUntil(
        "p claimed the entry back",
        async () => (await pendingOf(clients.admin, log.keys.stream, "g", id))?.consumer === "p",
        5_000,
      );
      expect(starts).toEqual([1]);
      expect(consumer.stats()).toMatchObject({ claimed: 0, inflight: 1, queued: 0 });
      // p holds it again: its idle time is reset by p's refreshes (the delivery count stays), so no claim takes it
      // while the handler runs.
      const deliveries = (await pendingOf(clients.admin, log.keys.stream, "g", id))?.deliveries;
      let lastIdle = Number.POSITIVE_INFINITY;
      await waitUntil(
        "the entry's idle time reset while p holds it",
        async () => {
          const rows = (await clients.admin.xpending(log.keys.stream, "g", "-", "+", 1)) as [string, string, number][];
          const idle = Number(rows[0]?.[2]);
          const reset = idle < lastIdle && lastIdle !== Number.POSITIVE_INFINITY;
          lastIdle = idle;
          return reset;
        },
        5_000,
      );
      expect(await pendingOf(clients.admin, log.keys.stream, "g", id)).toEqual({ consumer: "p", deliveries });
      slow.open();
      await waitUntil("acknowledged", () => consumer.stats().acked === 1, 5_000);
      expect(await pendingOf(clients.admin, log.keys.stream, "g", id)).toBeUndefined();
      expect(starts).toEqual([1]);
    } finally {
      slow.open();
      await consumer.stop();
    }
  });
});
