import { connect, type OperationEvent, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "./helpers.js";

const prefix = testPrefix("elack");

/** Ids pending in `group` (the PEL), oldest first, with their delivery counts. */
async function pendingIds(admin: RedisClient, stream: string, group: string): Promise<[string, number][]> {
  const rows = (await admin.xpending(stream, group, "-", "+", 10_000)) as [string, string, number, number][];
  return rows.map(([id, , , deliveries]) => [id, Number(deliveries)]);
}

// Acknowledgements are coalesced: the entries whose handlers succeeded in one event-loop turn share one XACK. Counted
// on a server of its own (MONITOR sees every client command; INFO commandstats every executed one).
describe("consumer group acknowledgements", () => {
  let server: RedisServer;
  let redis: RedisClient;
  /** The unrestricted user, for XPENDING. */
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    admin = connect(server.adminUrl);
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(async () => {
    redis.disconnect();
    admin.disconnect();
    await server.stop();
  });

  it("one XACK per turn for the handlers that succeeded in it; a failed handler's entry is never acked", async () => {
    const outcomes: Record<string, number> = {};
    const observer = {
      onOperation: (e: OperationEvent) => {
        if (e.op === "consume") outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
      },
    };
    const log = new EventLog<{ n: number }>(redis, "sync", { prefix, observer });
    const filler = new EventLog<{ n: number }>(redis, "sync", { prefix, batch: true });
    const ids = (await Promise.all(Array.from({ length: 200 }, (_, n) => filler.append({ n })))).map((r) => r.id);
    const failing = ids.filter((_, n) => n % 10 === 3);
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    let handled = 0;
    const {
      result: consumer,
      sent,
      executed,
    } = await countCommands(server, async () => {
      const c = group.consume(
        (entry) => {
          handled++;
          if (entry.data.n % 10 === 3) throw new Error(`cannot handle ${entry.data.n}`);
        },
        { concurrency: 50, batch: 100, blockMs: 100, maxDeliveries: 5 },
      );
      await waitUntil("200 entries handled", () => handled === 200);
      await c.stop(); // drains: the XACK of the last turn is answered before stop() resolves
      return c;
    });
    // Two reads of 100 entries, each handled within one turn (synchronous handlers): two XACKs for 180 entries
    // instead of one XACK per entry.
    expect(sent.xack).toBeGreaterThanOrEqual(1);
    expect(sent.xack).toBeLessThanOrEqual(2);
    expect(executed.xack).toBe(sent.xack);
    expect(consumer.stats()).toMatchObject({ acked: 180, failed: 20, deadLettered: 0, inflight: 0, acking: 0 });
    expect(outcomes).toEqual({ acked: 180, failed: 20 });
    // Exactly the failed entries stay pending (delivered once, redelivered after claimIdleMs); the others are acked.
    expect(await pendingIds(admin, log.keys.stream, "g")).toEqual(failing.map((id) => [id, 1]));
    expect(await group.info()).toMatchObject({ pending: 20, lag: 0 });
  });

  it("async handlers resolving in one turn share an XACK; an entry is acked only once its own handler succeeded", async () => {
    const log = new EventLog<{ n: number }>(redis, "async", { prefix, batch: true });
    const ids = (await Promise.all(Array.from({ length: 50 }, (_, n) => log.append({ n })))).map((r) => r.id);
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    let started = 0;
    let releaseSlow!: () => void;
    const slow = new Promise<void>((r) => {
      releaseSlow = r;
    });
    let releaseRest!: () => void;
    const rest = new Promise<void>((r) => {
      releaseRest = r;
    });
    const { result: consumer, sent } = await countCommands(server, async () => {
      const c = group.consume(
        async (entry) => {
          started++;
          await (entry.data.n === 0 ? slow : rest);
        },
        { concurrency: 50, batch: 50, blockMs: 100 },
      );
      await waitUntil("50 handlers running", () => started === 50);
      releaseRest(); // 49 handlers resolve in this turn
      await waitUntil("49 acked", () => c.stats().acked === 49);
      // The slow handler has not finished: its entry, and only it, is still pending.
      expect(await pendingIds(admin, log.keys.stream, "g")).toEqual([[ids[0], 1]]);
      expect(c.stats()).toMatchObject({ inflight: 1, acking: 0 });
      releaseSlow();
      await c.stop();
      return c;
    });
    expect(sent.xack).toBe(2); // one for the 49 handlers of one turn, one for the slow one
    expect(consumer.stats()).toMatchObject({ acked: 50, failed: 0, inflight: 0, queued: 0, acking: 0 });
    expect(await pendingIds(admin, log.keys.stream, "g")).toEqual([]);
  });

  it("stop() waits for the XACK of handlers that finished in the turn it was called in", async () => {
    const log = new EventLog<{ n: number }>(redis, "stop", { prefix, batch: true });
    await Promise.all(Array.from({ length: 30 }, (_, n) => log.append({ n })));
    const group = log.group("g", { consumer: "c1" });
    let started = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const consumer = group.consume(
      async () => {
        started++;
        await gate;
      },
      { concurrency: 30, batch: 30, blockMs: 100 },
    );
    await waitUntil("30 handlers running", () => started === 30);
    release();
    await consumer.stop(); // called before the handlers' continuations ran: their XACK is not even queued yet
    expect(consumer.stats()).toMatchObject({ acked: 30, acking: 0 });
    expect(await group.info()).toMatchObject({ pending: 0, lag: 0 });
  });
});
