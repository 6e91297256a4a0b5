import { connect, type RedisClient } from "@coordis/core";
import { EventLog, eventlogScripts } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("elstall-inflight");

/** Blocks this process' event loop for `ms` (a CPU-bound handler, a long GC pause): the fault under test. */
function blockEventLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// The refresh that keeps a consumer's held entries from going idle is sent by a timer; a claim sends the due refresh
// first, on the same connection. When the event loop stalls right after a timer's refresh went out, that refresh ran
// in Redis before the stall, but its reply is read only after it: the claim that comes first after the stall must
// still send its own refresh, or Redis finds the held entries idle for the whole stall and the claim takes them back.
describe("a consumer stalled while a refresh is on its way", () => {
  const clients = sharedClients();
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("does not claim back and start again an entry whose handler still runs in it", async () => {
    // Tells the handler when a refresh was sent.
    let refreshSent: (() => void) | undefined;
    type Send = (script: string, ...rest: unknown[]) => Promise<unknown>;
    const raw = redis as unknown as { evalsha: Send };
    const send = raw.evalsha.bind(raw);
    raw.evalsha = (script, ...rest) => {
      const reply = send(script, ...rest);
      if (script === eventlogScripts.refresh.sha1) refreshSent?.();
      return reply;
    };
    const log = new EventLog<string>(redis, `inflight-${Date.now()}`, { prefix });
    let releaseSlow!: () => void;
    const slow = new Promise<void>((resolve) => {
      releaseSlow = resolve;
    });
    const starts: string[] = [];
    const consumer = log.group("g", { consumer: "p" }).consume(
      async (e, { deliveries }) => {
        starts.push(`${e.data}#${deliveries}`);
        if (e.data === "slow") {
          await slow;
          return;
        }
        // A CPU-bound handler that starts right after a refresh went out (the next turn of the event loop: the
        // refresh is written, its reply not read yet), and blocks the loop for three times claimIdleMs.
        await new Promise<void>((resolve) => {
          refreshSent = resolve;
        });
        refreshSent = undefined;
        await new Promise<void>((resolve) => setImmediate(resolve));
        blockEventLoop(900);
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
      expect(starts).toEqual(["slow#1", "cpu#1"]);
      expect(consumer.stats().claimed).toBe(0);
      const rows = (await clients.admin.xpending(log.keys.stream, "g", id, id, 1)) as [
        string,
        string,
        number,
        number,
      ][];
      expect(rows.map((r) => [r[1], Number(r[3])])).toEqual([["p", 1]]);
      releaseSlow();
      await waitUntil("both acknowledged", () => consumer.stats().acked === 2, 5_000);
    } finally {
      releaseSlow();
      await consumer.stop();
    }
  });
});
