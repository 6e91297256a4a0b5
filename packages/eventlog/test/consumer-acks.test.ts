import { setTimeout as sleep } from "node:timers/promises";
import { type CoordisEvent, connect, type OperationEvent, type RedisClient } from "@coordis/core";
import { type Consumer, type Entry, EventLog } from "@coordis/eventlog";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil, withDeadline } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventlogScripts } from "../src/scripts.generated.js";

const prefix = testPrefix("elack");

/** Ids pending in `group` (the PEL), oldest first, with their delivery counts. */
async function pendingIds(admin: RedisClient, stream: string, group: string): Promise<[string, number][]> {
  const rows = (await admin.xpending(stream, group, "-", "+", 10_000)) as [string, string, number, number][];
  return rows.map(([id, , , deliveries]) => [id, Number(deliveries)]);
}

/** A promise and the function that resolves it: a gate handlers wait on until the test opens it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/** How many clients of the server are blocked in XREADGROUP (a consumer's read waiting for entries). */
async function blockedReads(admin: RedisClient): Promise<number> {
  const list = (await admin.client("LIST")) as string;
  return list.split("\n").filter((line) => / flags=\S*b\S* /.test(line) && / cmd=xreadgroup( |$)/.test(line)).length;
}

/** `consumer.stop()`, or a rejection after `ms`: a stop() that never resolves fails the test instead of hanging it. */
const stopWithin = (consumer: Consumer<unknown>, ms: number) => withDeadline(consumer.stop(), ms, "consumer.stop()");

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
    // A read asks for at most the free slots (50) and its synchronous handlers all finish in the turn its reply
    // arrives in: one XACK per read that brought entries, a few for 180 entries instead of one per entry.
    expect(sent.xack).toBeGreaterThanOrEqual(4);
    expect(sent.xack).toBeLessThanOrEqual(sent.xreadgroup as number);
    expect(sent.xack).toBeLessThanOrEqual(20);
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
    const slow = gate();
    const rest = gate();
    const { result: consumer, sent } = await countCommands(server, async () => {
      const c = group.consume(
        async (entry) => {
          started++;
          await (entry.data.n === 0 ? slow : rest).promise;
        },
        { concurrency: 50, batch: 50, blockMs: 100 },
      );
      await waitUntil("50 handlers running", () => started === 50);
      rest.open(); // 49 handlers resolve in this turn
      await waitUntil("49 acked", () => c.stats().acked === 49);
      // The slow handler has not finished: its entry, and only it, is still pending.
      expect(await pendingIds(admin, log.keys.stream, "g")).toEqual([[ids[0], 1]]);
      expect(c.stats()).toMatchObject({ inflight: 1, acking: 0 });
      slow.open();
      await c.stop();
      return c;
    });
    expect(sent.xack).toBe(2); // one for the 49 handlers of one turn, one for the slow one
    expect(consumer.stats()).toMatchObject({ acked: 50, failed: 0, inflight: 0, queued: 0, acking: 0 });
    expect(await pendingIds(admin, log.keys.stream, "g")).toEqual([]);
  });

  it("stop() called while handlers run resolves only once their XACK is answered", async () => {
    const log = new EventLog<{ n: number }>(redis, "stop", { prefix, batch: true });
    await Promise.all(Array.from({ length: 30 }, (_, n) => log.append({ n })));
    const group = log.group("g", { consumer: "c1" });
    let started = 0;
    const handlers = gate();
    const consumer = group.consume(
      async () => {
        started++;
        await handlers.promise;
      },
      { concurrency: 30, batch: 30, blockMs: 100 },
    );
    await waitUntil("30 handlers running", () => started === 30);
    const stopping = consumer.stop();
    // Let the read loop end before the handlers finish: once no read of this consumer is blocked in the server (and
    // its reply, if any, has been taken in), stop() has nothing left to wait for but the drain. Were the read still
    // blocked, stop() would first wait for it (up to blockMs), long enough for any XACK to be answered meanwhile.
    await waitUntil("no blocked XREADGROUP", async () => (await blockedReads(admin)) === 0);
    await sleep(50);
    expect(consumer.stats()).toMatchObject({ inflight: 30, acking: 0, acked: 0 });
    handlers.open(); // the handlers succeed now; their XACK is not even queued before they run
    await stopping;
    // Right after stop() resolved: every entry's XACK was answered, nothing is pending.
    expect(consumer.stats()).toMatchObject({ acked: 30, acking: 0, inflight: 0 });
    expect((await pendingIds(admin, log.keys.stream, "g")).length).toBe(0);
    expect(await group.info()).toMatchObject({ pending: 0, lag: 0 });
  });

  it("entries awaiting their XACK take handler slots beyond `concurrency`: slow XACKs slow intake down", async () => {
    const log = new EventLog<{ n: number }>(redis, "slow-acks", { prefix, batch: true });
    await Promise.all(Array.from({ length: 200 }, (_, n) => log.append({ n })));
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    // Stall the connection the consumer's XACKs go through (the log's client): a blocked XREAD on it holds every
    // later command of that connection in the server until the stall key gets an entry. Reads go through the
    // consumer's own connection and are not held.
    const stallKey = `${prefix}:stall`;
    const stall = redis.xread("BLOCK", 1_500, "STREAMS", stallKey, "$");
    await waitUntil("the log's connection blocked", async () =>
      ((await admin.client("LIST")) as string).includes("cmd=xread "),
    );
    let handled = 0;
    const concurrency = 5;
    const consumer = group.consume(
      () => {
        handled++;
      },
      { concurrency, batch: 50, blockMs: 100 },
    );
    await waitUntil(`${2 * concurrency} handled`, () => handled >= 2 * concurrency);
    await sleep(300); // time enough for an unbounded consumer to take and handle all 200
    // `concurrency` entries may await their XACK for free, the next `concurrency` take the slots: then it waits.
    expect(handled).toBe(2 * concurrency);
    expect(consumer.stats()).toMatchObject({ acking: 2 * concurrency, inflight: 0, queued: 0, acked: 0 });
    // (Read through the admin connection: the log's own is stalled.) Not acknowledged yet, and nothing more taken.
    expect((await pendingIds(admin, log.keys.stream, "g")).length).toBe(2 * concurrency);
    await admin.xadd(stallKey, "*", "x", "1"); // the XACKs get through
    await stall;
    await waitUntil("200 handled", () => handled === 200);
    await consumer.stop();
    expect(consumer.stats()).toMatchObject({ acked: 200, acking: 0, inflight: 0, failed: 0 });
    expect(await group.info()).toMatchObject({ pending: 0, lag: 0 });
  });

  it("a read asks only for free handler slots: no entry waits in a busy consumer while others could take it", async () => {
    const log = new EventLog<{ n: number }>(redis, "no-hoard", { prefix, batch: true });
    await Promise.all(Array.from({ length: 100 }, (_, n) => log.append({ n })));
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    let started = 0;
    const handlers = gate();
    const consumer = group.consume(
      async () => {
        started++;
        await handlers.promise;
      },
      { concurrency: 5, batch: 20, blockMs: 100 },
    );
    await waitUntil("5 handlers running", () => started === 5);
    await sleep(100);
    // The 5 running entries are all this consumer holds; the other 95 are left for the group's other consumers.
    expect(consumer.stats()).toMatchObject({ inflight: 5, queued: 0 });
    expect(await group.info()).toMatchObject({ pending: 5, lag: 95 });
    const other = log.group("g", { consumer: "c2" });
    let otherHandled = 0;
    const second = other.consume(
      () => {
        otherHandled++;
      },
      { concurrency: 10, batch: 100, blockMs: 100 },
    );
    await waitUntil("95 handled by c2", () => otherHandled === 95);
    handlers.open();
    await Promise.all([consumer.stop(), second.stop()]);
    expect(started).toBe(5);
    expect(consumer.stats()).toMatchObject({ acked: 5, queued: 0, inflight: 0 });
    expect(second.stats()).toMatchObject({ acked: 95 });
    expect(await group.info()).toMatchObject({ pending: 0, lag: 0 });
  });

  it("a claim of the consumer's own idle entries goes after the XACK of a handler that finished in the same turn", async () => {
    const log = new EventLog<{ n: number }>(redis, "claim-order", { prefix });
    await log.append({ n: 0 });
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    // Cached in the server, so the claim's EVALSHA runs (a NOSCRIPT would send its EVAL later, after the XACK).
    await admin.script("LOAD", eventlogScripts.claim.source);
    // The order in which the consumer sends its commands on the log's connection (what Redis runs them in).
    const order: string[] = [];
    const client = redis as unknown as Record<"xack" | "evalsha", (...args: unknown[]) => unknown>;
    const { xack, evalsha } = client;
    client.xack = (...args) => {
      order.push("xack");
      return xack.apply(redis, args);
    };
    client.evalsha = (...args) => {
      order.push("evalsha"); // the claim first; a refresh of the entry awaiting its XACK may follow
      return evalsha.apply(redis, args);
    };
    const calls: number[] = [];
    let claimsWhenHandlerFinished = -1;
    let claimsAtTurnEnd = -1;
    const claimIntervalMs = 500;
    let consumer: Consumer<{ n: number }> | undefined;
    try {
      const startedAt = performance.now();
      consumer = group.consume(
        (_entry, { deliveries }) => {
          calls.push(deliveries);
          if (calls.length > 1) return;
          // A synchronous handler that holds the event loop until the next claim is due (the entry has been pending
          // far longer than claimIdleMs by then, and no refresh could run): when it returns, its slot is free and
          // the consumer's loop sends the claim in this same turn.
          while (performance.now() < startedAt + claimIntervalMs + 30) {
            // busy: the claim comes due
          }
          claimsWhenHandlerFinished = order.filter((c) => c === "evalsha").length;
          setImmediate(() => {
            claimsAtTurnEnd = order.filter((c) => c === "evalsha").length;
          });
        },
        { concurrency: 1, claimIdleMs: 10, claimIntervalMs, blockMs: 100 },
      );
      await waitUntil("the claim ran", () => claimsAtTurnEnd >= 0);
      await sleep(100);
      await stopWithin(consumer, 5_000);
    } finally {
      client.xack = xack;
      client.evalsha = evalsha;
    }
    // The premise: the claim was sent in the turn the handler finished in, after it finished.
    expect(claimsWhenHandlerFinished).toBe(0);
    expect(claimsAtTurnEnd).toBe(1);
    // The XACK went first, so the claim found nothing idle: the entry was handled once and acked once.
    expect(calls).toEqual([1]);
    expect(consumer.stats()).toMatchObject({ acked: 1, claimed: 0, deadLettered: 0 });
    expect(order.slice(0, 2)).toEqual(["xack", "evalsha"]);
    expect(await pendingIds(admin, log.keys.stream, "g")).toEqual([]);
    expect(await admin.xlen(log.keys.dlq)).toBe(0);
  });

  it("a handler's thenable whose then() throws fails its entry; its slot is given back and stop() resolves", async () => {
    const events: CoordisEvent[] = [];
    const outcomes: Record<string, number> = {};
    const observer = {
      onEvent: (e: CoordisEvent) => events.push(e),
      onOperation: (e: OperationEvent) => {
        if (e.op === "consume") outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
      },
    };
    const log = new EventLog<{ n: number }>(redis, "throwing-then", { prefix, observer });
    const ids: string[] = [];
    for (let n = 0; n < 4; n++) ids.push((await log.append({ n })).id);
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    let handled = 0;
    const consumer = group.consume(
      (entry: Entry<{ n: number }>) => {
        handled++;
        if (entry.data.n !== 3) return Promise.resolve();
        return {
          // biome-ignore lint/suspicious/noThenProperty: a misbehaving thenable is what this test is about
          then() {
            throw new Error("then failed");
          },
        } as unknown as Promise<void>;
      },
      { concurrency: 4, batch: 10, blockMs: 100 },
    );
    await waitUntil("4 handled", () => handled === 4);
    await stopWithin(consumer, 5_000);
    expect(consumer.stats()).toMatchObject({ acked: 3, failed: 1, inflight: 0, queued: 0, acking: 0 });
    expect(outcomes).toEqual({ acked: 3, failed: 1 });
    expect(events.filter((e) => e.type === "consume-read-error")).toEqual([]);
    expect(await pendingIds(admin, log.keys.stream, "g")).toEqual([[ids[3], 1]]);
  });

  it("a handler's thenable calling back twice, or both ways, settles its entry once", async () => {
    const log = new EventLog<{ n: number }>(redis, "twice-then", { prefix });
    for (let n = 0; n < 4; n++) await log.append({ n });
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    let handled = 0;
    const consumer = group.consume(
      () => {
        handled++;
        return {
          // biome-ignore lint/suspicious/noThenProperty: a misbehaving thenable is what this test is about
          then(ok: () => void, fail: (err: unknown) => void) {
            ok();
            ok();
            fail(new Error("too late"));
          },
        } as unknown as Promise<void>;
      },
      { concurrency: 2, batch: 10, blockMs: 100 },
    );
    await waitUntil("4 handled", () => handled === 4);
    await stopWithin(consumer, 5_000);
    expect(consumer.stats()).toMatchObject({ acked: 4, failed: 0, inflight: 0, queued: 0, acking: 0 });
    expect(await group.info()).toMatchObject({ pending: 0, lag: 0 });
  });

  it("counts only the entries an XACK acknowledged; one acknowledged elsewhere meanwhile is reported already-acked", async () => {
    const outcomes: Record<string, number> = {};
    const observer = {
      onOperation: (e: OperationEvent) => {
        if (e.op === "consume") outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
      },
    };
    const log = new EventLog<{ n: number }>(redis, "ack-count", { prefix, observer });
    for (let n = 0; n < 10; n++) await log.append({ n });
    const group = log.group("g", { consumer: "c1" });
    await group.create();
    let handled = 0;
    const consumer = group.consume(
      async (entry) => {
        // As if another consumer had reclaimed entry 0 and acknowledged it while this handler ran.
        if (entry.data.n === 0) await admin.xack(log.keys.stream, "g", entry.id);
        handled++;
      },
      { concurrency: 10, batch: 10, blockMs: 100 },
    );
    await waitUntil("10 handled", () => handled === 10);
    await consumer.stop();
    expect(consumer.stats()).toMatchObject({ acked: 9, failed: 0, acking: 0 });
    expect(outcomes).toEqual({ acked: 9, "already-acked": 1 });
    expect(await group.info()).toMatchObject({ pending: 0, lag: 0 });
  });
});
