import { InvalidArgumentError, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elopts");
const key = "k".repeat(32);

/** What `call` threw or rejected with (undefined when it succeeded). */
async function failureOf(call: () => unknown): Promise<unknown> {
  return Promise.resolve()
    .then(call)
    .then(
      () => undefined,
      (err: unknown) => err,
    );
}

describe("EventLog options are checked whole: an unknown key (a typo) is an InvalidArgumentError naming it", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("in the constructor (also inside chain, batch and durability) and every call's options; nothing is sent", async () => {
    const log = new EventLog<{ a: number }>(redis, "typo", { prefix });
    const group = log.group("g", { consumer: "c" });
    const started: Array<{ stop(): Promise<void> }> = [];
    const make = (options: object) => new EventLog(redis, "typo", { prefix, ...options } as never);
    const calls: Array<[string, () => unknown]> = [
      ["options.prefx", () => new EventLog(redis, "typo", { prefx: "app" } as never)],
      ["options.maxLength", () => make({ maxLength: 100 })],
      ["options.maxAge", () => make({ maxAge: 60_000 })],
      ["options.idempotencyWindow", () => make({ idempotencyWindow: 1_000 })],
      ["options.chain.prevKeys", () => make({ chain: { key, keyId: "k1", prevKeys: {} } })],
      ["options.batch.maxsize", () => make({ batch: { maxsize: 4 } })],
      ["options.durability.replica", () => make({ durability: { replicas: 1, timeoutMs: 100, replica: 1 } })],
      ["options.idempotency", () => log.append({ a: 1 }, { idempotency: "k1" } as never)],
      ["options.afterId", () => log.read({ afterId: "0-1" } as never)],
      ["options.count", () => log.read({ count: 5 } as never)],
      ["options.start", () => log.tail({ start: "start" } as never)],
      ["options.name", () => log.group("g", { consumer: "c", name: "x" } as never)],
      ["options.start", () => log.group("g", { consumer: "c", start: "end" } as never)],
      [
        "options.concurency",
        () => {
          started.push(group.consume(() => {}, { concurency: 4 } as never)); // reached only when accepted
        },
      ],
      ["options.count", () => log.deadLetters({ count: 5 } as never)],
    ];
    const { roundTrips, sent } = await countCommands(server, async () => {
      for (const [argument, call] of calls) {
        const err = await failureOf(call);
        expect(err, argument).toBeInstanceOf(InvalidArgumentError);
        expect((err as InvalidArgumentError).argument, argument).toBe(argument);
        expect((err as Error).message, argument).toMatch(/unknown option/);
      }
    });
    await Promise.all(started.map((c) => c.stop()));
    expect(started).toHaveLength(0);
    expect(sent).toEqual({});
    expect(roundTrips).toBe(0);
  });

  it("the message lists the known keys, and every documented key is accepted", async () => {
    const err = await failureOf(() => new EventLog(redis, "typo", { prefx: "app" } as never));
    expect((err as Error).message).toContain(
      "known: maxLen, maxAgeMs, chain, unverified, idempotencyConflict, prefix, observer, maxEventBytes, " +
        "idempotencyWindowMs, batch, durability",
    );
    const log = new EventLog<number>(redis, "all-keys", {
      prefix,
      maxLen: 1_000,
      maxAgeMs: 60_000,
      chain: true,
      unverified: "mark",
      idempotencyConflict: "report",
      observer: {},
      maxEventBytes: 4_096,
      idempotencyWindowMs: 60_000,
      batch: { maxSize: 4, maxDelayMs: 0 },
    });
    await log.append(1, { idempotencyKey: "one" });
    const page = await log.read({
      after: "0-0",
      before: "99999999999999-0",
      limit: 10,
      reverse: true,
      unverified: "skip",
    });
    expect(page.entries.map((e) => e.data)).toEqual([1]);
    expect(await log.deadLetters({ after: "0-0", limit: 5 })).toEqual([]);
  });

  it("stop() with an unknown key rejects and leaves the consumer running; after the stop, bad options still reject", async () => {
    const log = new EventLog<number>(redis, "stop-typo", { prefix });
    const handled: number[] = [];
    const consumer = log
      .group("g", { consumer: "c", startAt: "start" })
      .consume((e) => void handled.push(e.data), { blockMs: 100, concurrency: 2, batch: 5 });
    try {
      // `timeout` for `timeoutMs`: before, the consumer stopped with the default deadline instead. A promise that
      // rejects, as every other call's bad options do (not a throw).
      const stopping = consumer.stop({ timeout: 5 } as never);
      await expect(stopping).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(stopping).rejects.toMatchObject({ argument: "options.timeout" });
      await log.append(7);
      await waitUntil("the entry appended after the rejected stop() is handled", () => handled.includes(7), 10_000);
    } finally {
      await consumer.stop({ timeoutMs: 5_000 });
    }
    expect(consumer.stats().acked).toBe(1);
    // Once stopped, bad options still reject (they are not ignored for the first call's result).
    await expect(consumer.stop({ timeoutMs: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
