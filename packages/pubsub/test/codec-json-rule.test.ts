import { InvalidArgumentError, type RedisClient } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
import { countCommands, type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

/** An ORM entity: a class instance with fields. */
class Order {
  constructor(
    readonly id: string,
    readonly lines: number,
  ) {}
}

/** A type that declares its JSON form, as Decimal, ObjectId or Luxon's DateTime do. */
class Decimal {
  constructor(private readonly digits: string) {}
  toJSON(): string {
    return this.digits;
  }
}

describe("the default codec: a message JSON would change is refused before anything is sent", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let bus: PubSub;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    await redis.ping();
    bus = new PubSub(redis, { prefix });
  });
  afterAll(async () => {
    await bus.close();
    await server.stop();
  });

  it("NaN, ±Infinity, a Map or a Set in a message: InvalidArgumentError(message) naming where, nothing published", async () => {
    const got: unknown[] = [];
    await bus.subscribe("strict", (m) => {
      got.push(m);
    });
    const refused: Array<[unknown, string]> = [
      [{ avg: Number.NaN }, "message.avg is NaN, which JSON stores as null"],
      [[Number.POSITIVE_INFINITY], "message[0] is Infinity, which JSON stores as null"],
      [{ tags: new Set(["a"]) }, "message.tags is a Set, which JSON stores as {}"],
      [new Map([["a", 1]]), "message is a Map, which JSON stores as {}"],
      [{ at: new Date(Number.NaN) }, "message.at is an invalid Date, which JSON stores as null"],
    ];
    for (const [message, where] of refused) {
      let error: unknown;
      const { sent } = await countCommands(server, async () => {
        error = await bus.publish("strict", message).catch((e: unknown) => e);
      });
      expect(error, where).toBeInstanceOf(InvalidArgumentError);
      expect(error).toMatchObject({ argument: "message" });
      expect((error as Error).message).toContain(where);
      expect(sent, `${where}: nothing sent`).toEqual({});
    }
    // Messages of one connection arrive in order: the subscriber got nothing before this one.
    expect(await bus.publish("strict", { avg: 1 })).toBe(1);
    await waitUntil("the accepted message", () => got.length >= 1);
    expect(got).toEqual([{ avg: 1 }]);
  });

  it("a class instance with fields is sent as its fields, a toJSON value as its JSON form", async () => {
    const got: unknown[] = [];
    await bus.subscribe("entities", (m) => {
      got.push(m);
    });
    await bus.publish("entities", new Order("o-1", 2));
    await bus.publish("entities", { total: new Decimal("9.90"), at: new Date(0) });
    await waitUntil("both messages", () => got.length === 2);
    expect(got).toEqual([
      { id: "o-1", lines: 2 },
      { total: "9.90", at: "1970-01-01T00:00:00.000Z" },
    ]);
  });
});
