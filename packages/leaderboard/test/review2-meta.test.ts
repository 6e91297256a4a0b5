import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("lb-meta");

/** An ORM entity: a class instance with fields (and methods on its prototype). */
class Player {
  constructor(
    readonly name: string,
    readonly level: number,
  ) {}
  greet(): string {
    return `hi ${this.name}`;
  }
}

/** A type that declares its JSON form, as Decimal, ObjectId or Luxon's DateTime do. */
class Decimal {
  constructor(private readonly digits: string) {}
  toJSON(): string {
    return this.digits;
  }
}

/** A class instance without enumerable fields: JSON stores it as {}. */
class Badge {}

/**
 * Metadata JSON would change or drop on its way to Redis: each would come back from top(), rank() and around() as
 * something else than what was submitted (NaN and ±Infinity as null, a Map, a Set or an object of a class without
 * enumerable fields as {}, undefined in an array as null, an invalid Date as null).
 */
const altered: Array<[string, unknown]> = [
  ["NaN", { score: Number.NaN }],
  ["Infinity", { best: Number.POSITIVE_INFINITY }],
  ["a Map", { badges: new Map([["gold", 1]]) }],
  ["a Set", new Set(["gold"])],
  ["undefined in an array", ["a", undefined]],
  ["an object of a class without fields", { badge: new Badge() }],
  ["an Error", { last: new Error("x") }],
  ["NaN behind toJSON", { ratio: { toJSON: () => Number.NaN } }],
  ["an invalid Date", { joined: new Date(Number.NaN) }],
];

describe("member metadata that JSON would change is refused before anything is sent", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let lb: Leaderboard<unknown>;
  let batched: Leaderboard<unknown>;
  beforeAll(async () => {
    server = await startRedis();
    redis = connect(server.url);
    lb = new Leaderboard(redis, "meta", { prefix, periods: ["daily", "all"] });
    batched = new Leaderboard(redis, "meta", { prefix, periods: ["daily", "all"], batch: true });
    await lb.submit("known", 1, { meta: { name: "Known" } });
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it.each(altered)(
    "%s: submit, submitMany, a batched submit and setMeta reject it naming the argument",
    async (_, meta) => {
      const calls: Array<[string, () => Promise<unknown>]> = [
        ["meta", () => lb.submit("m", 5, { meta })],
        [
          "items[1].meta",
          () =>
            lb.submitMany([
              { member: "a", score: 1 },
              { member: "m", score: 5, meta },
            ]),
        ],
        ["meta", () => batched.submit("m", 5, { meta })],
        ["meta", () => lb.setMeta("known", meta)],
      ];
      for (const [argument, call] of calls) {
        let error: unknown;
        const { sent } = await countCommands(server, async () => {
          error = await call().then(
            () => undefined,
            (err: unknown) => err,
          );
        });
        expect(error, `${argument}: accepted`).toBeInstanceOf(InvalidArgumentError);
        expect((error as InvalidArgumentError).argument).toBe(argument);
        expect(sent, `${argument}: nothing sent`).toEqual({});
      }
      expect(await lb.rank("m", { period: "all" })).toBeNull();
      expect(await lb.rank("known", { period: "all" })).toMatchObject({ meta: { name: "Known" } });
    },
  );

  it("JSON values come back exactly as submitted; a Date as its ISO string", async () => {
    const values: unknown[] = [
      { name: "Ada", tags: ["x", "y"], level: 1.5, nested: { ok: true, none: null } },
      null,
      "plain text",
      0,
      [1, "two", null],
    ];
    for (const [i, meta] of values.entries()) {
      await lb.submit(`v${i}`, i, { meta });
      expect((await lb.rank(`v${i}`, { period: "all" }))?.meta).toEqual(meta);
    }
    const joined = new Date(Date.UTC(2026, 0, 2));
    await lb.submit("dated", 1, { meta: { joined } });
    expect((await lb.rank("dated"))?.meta).toEqual({ joined: joined.toISOString() });
  });

  it("a class instance with fields is stored as its fields, a toJSON value as its JSON form, on every path", async () => {
    const player = new Player("Ada", 3);
    const meta = { player, wallet: new Decimal("12.30") };
    const stored = { player: { name: "Ada", level: 3 }, wallet: "12.30" };
    await lb.submit("entity", 1, { meta });
    expect((await lb.rank("entity"))?.meta).toEqual(stored);
    await lb.submitMany([{ member: "entity-many", score: 2, meta: player }]);
    expect((await lb.rank("entity-many"))?.meta).toEqual({ name: "Ada", level: 3 });
    await batched.submit("entity-batched", 3, { meta: new Decimal("0.50") });
    expect((await lb.rank("entity-batched"))?.meta).toBe("0.50");
    await lb.setMeta("known", meta);
    expect((await lb.rank("known"))?.meta).toEqual(stored);
    await lb.setMeta("known", { name: "Known" });
  });

  it("a refusal names where in the metadata, from the argument on", async () => {
    const single = await lb.submit("m", 1, { meta: { badges: new Map() } }).catch((e: unknown) => e);
    expect((single as Error).message).toContain("meta.badges is a Map, which JSON stores as {}");
    const many = await lb
      .submitMany([
        { member: "a", score: 1 },
        { member: "m", score: 1, meta: [Number.NaN] },
      ])
      .catch((e: unknown) => e);
    expect((many as Error).message).toContain("items[1].meta[0] is NaN, which JSON stores as null");
  });
});
