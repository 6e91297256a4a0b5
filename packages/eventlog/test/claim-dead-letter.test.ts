import { connect, type OperationEvent, type RedisClient, runScript } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventlogScripts } from "../src/scripts.generated.js";

const prefix = testPrefix("elclaimdl");
let n = 0;
const logName = (label: string) => `${label}-${Date.now()}-${n++}`;

/** A promise and the function that resolves it: a gate handlers wait on until the test opens it. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/** Counts the `consume` outcomes reported to an observer, by outcome. */
function outcomeCounter() {
  const outcomes: Record<string, number> = {};
  const observer = {
    onOperation: (e: OperationEvent) => {
      if (e.op === "consume") outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
    },
  };
  return { outcomes, observer };
}

// A claim dead-letters an entry delivered more than maxDeliveries times whose consumer left it idle for claimIdleMs:
// that consumer died, or stalled (its event loop blocked, cut off from Redis). The dead letter names the consumer that
// held it, not the claiming one, which never ran it. A stalled holder may still succeed afterwards (acknowledgements
// are not fenced): its late acknowledgement removes the dead letter the claim made, since the entry was handled.
//
// The holder here keeps its entry idle by a claimIdleMs far longer than the test (no refresh comes due), while the
// claiming consumer takes entries idle for 50 ms: in Redis that is what a stalled or dead holder looks like.
describe("dead letters made by a claim", () => {
  const clients = sharedClients();
  /** The same log without the observer: the claiming consumer's outcomes are not counted with the holder's. */
  const unobserved = <T>(log: EventLog<T>) => new EventLog<T>(clients.redis, log.name, { prefix });

  it("name the consumer that held the entry, and the claiming one as claimedBy", async () => {
    const log = new EventLog<string>(clients.redis, logName("names"), { prefix });
    const stalled = gate();
    const started: string[] = [];
    const holder = log.group("g", { consumer: "holder" }).consume(
      async (e) => {
        started.push(e.data);
        await stalled.promise;
      },
      { claimIdleMs: 600_000 },
    );
    const claimerHandled: string[] = [];
    let claimer: ReturnType<typeof holder.stats> | undefined;
    try {
      const { id } = await log.append("only");
      await waitUntil("the holder's handler started", () => started.length === 1, 5_000);
      const other = log.group("g", { consumer: "claimer" }).consume(
        (e) => {
          claimerHandled.push(e.data);
        },
        { claimIdleMs: 50, claimIntervalMs: 20, blockMs: 20, maxDeliveries: 1 },
      );
      try {
        await waitUntil("the claim dead-lettered the entry", async () => (await log.deadLetters()).length === 1, 5_000);
      } finally {
        await other.stop();
        claimer = other.stats();
      }
      const [letter] = await log.deadLetters();
      expect(letter).toMatchObject({
        entryId: id,
        group: "g",
        consumer: "holder",
        claimedBy: "claimer",
        deliveries: 1,
        data: "only",
      });
      expect(letter?.error).toMatch(/not acknowledged after 1 deliveries/);
      expect(claimerHandled).toEqual([]);
      expect(claimer).toMatchObject({ deadLettered: 1, claimed: 0 });
    } finally {
      stalled.open();
      await holder.stop();
    }
  });

  it("a dead letter made by its holder after its handler failed has no claimedBy", async () => {
    const log = new EventLog<string>(clients.redis, logName("own"), { prefix });
    const consumer = log.group("g", { consumer: "c" }).consume(
      () => {
        throw new Error("cannot");
      },
      { maxDeliveries: 1, blockMs: 50 },
    );
    try {
      await log.append("x");
      await waitUntil("dead-lettered", () => consumer.stats().deadLettered === 1, 5_000);
    } finally {
      await consumer.stop();
    }
    const [letter] = await log.deadLetters();
    expect(letter).toMatchObject({ consumer: "c", deliveries: 1, data: "x" });
    expect(letter?.error).toMatch(/cannot/);
    expect(letter).not.toHaveProperty("claimedBy");
  });

  it("the holder's late success removes the claim's dead letter and is reported acked-late", async () => {
    const { outcomes, observer } = outcomeCounter();
    const log = new EventLog<string>(clients.redis, logName("late"), { prefix, observer });
    const stalled = gate();
    const started: string[] = [];
    const holder = log.group("g", { consumer: "holder" }).consume(
      async (e) => {
        started.push(e.data);
        await stalled.promise;
      },
      { claimIdleMs: 600_000 },
    );
    try {
      const { id } = await log.append("late");
      await waitUntil("the holder's handler started", () => started.length === 1, 5_000);
      const other = unobserved(log)
        .group("g", { consumer: "claimer" })
        .consume(() => {}, {
          claimIdleMs: 50,
          claimIntervalMs: 20,
          blockMs: 20,
          maxDeliveries: 1,
        });
      try {
        await waitUntil("the claim dead-lettered the entry", async () => (await log.deadLetters()).length === 1, 5_000);
      } finally {
        await other.stop();
      }
      // The stalled handler succeeds after all: its XACK finds the entry acknowledged by the claim already.
      stalled.open();
      await waitUntil("the holder's acknowledgement settled", () => Object.keys(outcomes).length > 0, 5_000);
      expect(outcomes).toEqual({ "acked-late": 1 });
      expect(holder.stats()).toMatchObject({ acked: 0, ackedLate: 1, acking: 0, inflight: 0 });
      // The entry was handled: it is no longer a dead letter.
      expect(await log.deadLetters()).toEqual([]);
      const pending = (await clients.admin.xpending(log.keys.stream, "g", id, id, 1)) as unknown[];
      expect(pending).toEqual([]);
    } finally {
      stalled.open();
      await holder.stop();
    }
  });

  it("a late ack removes only its own dead letters: one taken over and acknowledged elsewhere stays already-acked", async () => {
    const { outcomes, observer } = outcomeCounter();
    const log = new EventLog<string>(clients.redis, logName("mixed"), { prefix, observer });
    const stalled = gate();
    const started: string[] = [];
    const holder = log.group("g", { consumer: "holder" }).consume(
      async (e) => {
        started.push(e.data);
        await stalled.promise;
      },
      { claimIdleMs: 600_000, concurrency: 2, batch: 2 },
    );
    try {
      const x = await log.append("x");
      const y = await log.append("y");
      await waitUntil("both handlers started", () => started.length === 2, 5_000);
      // x was delivered once more than y (a consumer took it and died, and it came back): at maxDeliveries 2, the
      // claim below dead-letters x and takes y over.
      await clients.admin.call("XCLAIM", log.keys.stream, "g", "holder", "0", x.id);
      // A dead letter of y in another group that names the same consumers: not the holder's to remove.
      await clients.admin.xadd(
        log.keys.dlq,
        "*",
        ...["id", y.id, "group", "other", "consumer", "holder", "claimedBy", "claimer", "deliveries", "2"],
        ...["error", "not acknowledged", "d", JSON.stringify("y")],
      );
      const takenOver: string[] = [];
      const other = unobserved(log)
        .group("g", { consumer: "claimer" })
        .consume(
          (e) => {
            takenOver.push(e.data);
          },
          { claimIdleMs: 50, claimIntervalMs: 20, blockMs: 20, maxDeliveries: 2 },
        );
      try {
        await waitUntil(
          "x dead-lettered, y taken over and acknowledged",
          async () => other.stats().deadLettered === 1 && other.stats().acked === 1,
          5_000,
        );
      } finally {
        await other.stop();
      }
      expect(takenOver).toEqual(["y"]);
      stalled.open();
      await waitUntil(
        "the holder's acknowledgements settled",
        () => Object.values(outcomes).reduce((a, b) => a + b, 0) === 2,
        5_000,
      );
      expect(outcomes).toEqual({ "acked-late": 1, "already-acked": 1 });
      expect(holder.stats()).toMatchObject({ acked: 0, ackedLate: 1 });
      const left = await log.deadLetters();
      expect(left.map((d) => [d.entryId, d.group])).toEqual([[y.id, "other"]]);
    } finally {
      stalled.open();
      await holder.stop();
    }
  });

  it("a claim over many idle entries pages through them and names each holder", async () => {
    const log = new EventLog<number>(clients.redis, logName("pages"), { prefix });
    const group = log.group("g", { consumer: "claimer" });
    await group.create();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await log.append(i)).id);
    // Two consumers read them and died: a holds 0–3, b holds 4–6.
    await clients.admin.xreadgroup("GROUP", "g", "a", "COUNT", 4, "STREAMS", log.keys.stream, ">");
    await clients.admin.xreadgroup("GROUP", "g", "b", "COUNT", 3, "STREAMS", log.keys.stream, ">");
    // 1 and 5 were delivered once more (at maxDeliveries 2 they are dead-lettered); 3 was deleted meanwhile.
    await clients.admin.call("XCLAIM", log.keys.stream, "g", "a", "0", ids[1] as string);
    await clients.admin.call("XCLAIM", log.keys.stream, "g", "b", "0", ids[5] as string);
    await clients.admin.xdel(log.keys.stream, ids[3] as string);
    const handled: [number, number][] = [];
    const consumer = group.consume(
      (e, { deliveries }) => {
        handled.push([e.data, deliveries]);
      },
      { claimIdleMs: 10, claimIntervalMs: 10, blockMs: 10, maxDeliveries: 2, batch: 1 },
    );
    try {
      await waitUntil("nothing pending", async () => (await group.info())?.pending === 0, 5_000);
    } finally {
      await consumer.stop();
    }
    expect(handled.sort((p, q) => p[0] - q[0])).toEqual([
      [0, 2],
      [2, 2],
      [4, 2],
      [6, 2],
    ]);
    const letters = await log.deadLetters();
    expect(letters.map((d) => [d.data, d.consumer, d.claimedBy, d.deliveries])).toEqual([
      [1, "a", "claimer", 2],
      [5, "b", "claimer", 2],
    ]);
    expect(consumer.stats()).toMatchObject({ claimed: 4, deadLettered: 2 });
  });
});

// A full Redis that does not evict refuses new data, but a claim still dead-letters (its XCLAIM writes first, and Redis
// lets a script that has written finish), and a late acknowledgement still removes the dead letter (XDEL frees room).
describe("dead letters made by a claim on a full noeviction Redis", () => {
  let server: RedisServer;
  let raw: RedisClient;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ config: { "maxmemory-policy": "noeviction" } });
    raw = server.adminClient();
    redis = connect(server.url, { commandTimeoutMs: 2_000 });
  });
  afterAll(async () => {
    raw.disconnect();
    redis.disconnect();
    await server.stop();
  });

  it("the claim dead-letters naming the holder, and the holder's late success removes the dead letter", async () => {
    const events: string[] = [];
    const log = new EventLog<string>(redis, logName("full"), {
      prefix,
      observer: { onEvent: (e) => events.push(e.type) },
    });
    const stalled = gate();
    const started: string[] = [];
    const holder = log.group("g", { consumer: "holder" }).consume(
      async (e) => {
        started.push(e.data);
        await stalled.promise;
      },
      { claimIdleMs: 600_000 },
    );
    try {
      await log.append("full");
      await waitUntil("the holder's handler started", () => started.length === 1, 5_000);
      await raw.set(`${prefix}:filler`, "x".repeat(2_000_000));
      await raw.config("SET", "maxmemory", "1mb");
      const other = new EventLog<string>(redis, log.name, { prefix })
        .group("g", { consumer: "claimer" })
        .consume(() => {}, { claimIdleMs: 50, claimIntervalMs: 20, blockMs: 20, maxDeliveries: 1 });
      try {
        await waitUntil("the claim dead-lettered the entry", () => other.stats().deadLettered === 1, 5_000);
      } finally {
        await other.stop();
      }
      expect(await log.deadLetters()).toMatchObject([{ consumer: "holder", claimedBy: "claimer", data: "full" }]);
      stalled.open();
      await waitUntil("the holder's acknowledgement settled", () => holder.stats().ackedLate === 1, 5_000);
      expect(events).not.toContain("dead-letter-error");
      expect(await log.deadLetters()).toEqual([]);
    } finally {
      stalled.open();
      await raw.config("SET", "maxmemory", "0");
      await raw.del(`${prefix}:filler`);
      await holder.stop();
    }
  });
});

describe("a claim's scan of the pending entries", () => {
  const clients = sharedClients();

  it("looks at no more than 10 x count of them per call, busy ones included, and goes on from there", async () => {
    const redis = clients.redis;
    const name = logName("bounded");
    const log = new EventLog<number>(redis, name, { prefix });
    const stream = log.keys.stream;
    const ids: string[] = [];
    for (let i = 0; i < 1_001; i++) ids.push((await log.append(i)).id);
    await redis.xgroup("CREATE", stream, "g", "0");
    // 1,000 entries held by a busy consumer, then one its dead neighbour left idle for ten minutes.
    await redis.xreadgroup("GROUP", "g", "busy", "COUNT", 1_001, "STREAMS", stream, ">");
    await redis.call("XCLAIM", stream, "g", "dead", 0, ids[1_000] as string, "IDLE", 600_000);
    const claim = (cursor: string) =>
      runScript(
        redis,
        eventlogScripts.claim,
        [stream, log.keys.dlq, log.keys.deadLetterIndex],
        ["g", "claimer", 60_000, cursor, 10, 5],
      );
    let cursor = "0-0";
    let calls = 0;
    let found: unknown[] = [];
    do {
      const [next, entries] = await claim(cursor);
      calls++;
      cursor = next;
      if (entries.length > 0) found = entries;
    } while (cursor !== "0-0" && found.length === 0);
    // 10 calls of 100 busy entries each, then the idle one.
    expect(calls).toBe(11);
    expect(found).toHaveLength(1);
    expect((found[0] as [string])[0]).toBe(ids[1_000]);
  });
});
