import { connect, type RedisClient, ScriptError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
const chainKey = { key: "0123456789abcdef0123456789abcdef", keyId: "k1" };

/** A full Redis that does not evict refuses new data: every append fails at once with the OOM error, nothing lost. */
describe("EventLog on a full noeviction Redis", () => {
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

  it("every kind of log, new or with entries, with or without an idempotency key: ScriptError (OOM) at once, the log unchanged", async () => {
    const kinds = {
      "keyed chain": (name: string) => new EventLog(redis, name, { prefix, chain: chainKey }),
      "SHA-1 chain": (name: string) => new EventLog(redis, name, { prefix, chain: true }),
      plain: (name: string) => new EventLog(redis, name, { prefix }),
      batched: (name: string) => new EventLog(redis, name, { prefix, batch: true }),
    };
    const cases: Array<{ what: string; log: EventLog; before: number; chained: boolean }> = [];
    for (const [kind, make] of Object.entries(kinds)) {
      const used = make(`${kind}-used`.replace(/\W/g, "-"));
      await used.append({ warm: 1 });
      const chained = kind.endsWith("chain");
      cases.push({ what: `${kind}, with entries`, log: used, before: 1, chained });
      cases.push({ what: `${kind}, new`, log: make(`${kind}-new`.replace(/\W/g, "-")), before: 0, chained });
    }
    await raw.set(`${prefix}:filler`, "x".repeat(2_000_000));
    await raw.config("SET", "maxmemory", "1mb");
    try {
      for (const { what, log } of cases) {
        for (const options of [{}, { idempotencyKey: "order-42" }]) {
          const { result: err, roundTrips } = await countCommands(server, () =>
            log.append({ n: 1 }, options).catch((e: unknown) => e),
          );
          expect(err, `${what} ${JSON.stringify(options)}`).toBeInstanceOf(ScriptError);
          expect((err as ScriptError).redisMessage, what).toMatch(/^OOM /);
          // At once: one script call (after NOSCRIPT its EVAL), not attempts repeated until some deadline.
          expect(roundTrips, what).toBeLessThanOrEqual(2);
        }
      }
    } finally {
      await raw.config("SET", "maxmemory", "0");
    }
    for (const { what, log, before, chained } of cases) {
      expect(await log.length(), what).toBe(before);
      if (chained) expect((await log.verify()).ok, what).toBe(true);
      // And appends go on once there is room.
      await log.append({ n: 2 }, { idempotencyKey: "order-42" });
      expect(await log.length(), what).toBe(before + 1);
    }
  });

  // A handler failing its last delivery while Redis is full: its entry is dead-lettered at once with the handler's
  // error. It used to be refused (OOM, reported as dead-letter-error), left pending, and later dead-lettered by a claim
  // as "not acknowledged ... (the consumer died or timed out)": the real error was lost.
  it("an entry failing its last delivery is dead-lettered with its handler's error, also when Redis is full", async () => {
    const events: string[] = [];
    const log = new EventLog<number>(redis, "dead-letter-full", {
      prefix,
      observer: { onEvent: (e) => events.push(e.type) },
    });
    await log.append(1);
    let started = false;
    let fill!: () => void;
    const full = new Promise<void>((r) => {
      fill = r;
    });
    const consumer = log.group("g", { consumer: "c" }).consume(
      async () => {
        started = true;
        // Fails once Redis is full (reading needs room: XREADGROUP is refused on a full Redis).
        await full;
        throw new Error("payment provider refused the card");
      },
      { maxDeliveries: 1, claimIdleMs: 60_000 },
    );
    try {
      await waitUntil("the handler started", () => started, 5_000);
      await raw.set(`${prefix}:filler`, "x".repeat(2_000_000));
      await raw.config("SET", "maxmemory", "1mb");
      fill();
      await waitUntil("the entry failed", () => consumer.stats().failed === 1, 5_000);
      await waitUntil(
        "the entry dead-lettered, or the dead-letter refused",
        () => consumer.stats().deadLettered === 1 || events.includes("dead-letter-error"),
        5_000,
      );
      expect(events).not.toContain("dead-letter-error");
      expect(consumer.stats().deadLettered).toBe(1);
      const [letter] = await log.deadLetters();
      expect(letter).toMatchObject({ data: 1, deliveries: 1, error: "Error: payment provider refused the card" });
      expect((await raw.xpending(log.keys.stream, "g"))[0]).toBe(0);
    } finally {
      fill();
      await raw.config("SET", "maxmemory", "0");
      await raw.del(`${prefix}:filler`);
      await consumer.stop();
    }
  });
});
