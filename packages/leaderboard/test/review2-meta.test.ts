import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("lb-meta");

class Player {
  constructor(readonly name: string) {}
  greet(): string {
    return `hi ${this.name}`;
  }
}

/**
 * Metadata JSON would change or drop on its way to Redis: each would come back from top(), rank() and around() as
 * something else than what was submitted (NaN and ±Infinity as null, a Map or a Set as {}, undefined in an array as
 * null, a class instance as a plain object without its prototype, an invalid Date as null).
 */
const altered: Array<[string, unknown]> = [
  ["NaN", { score: Number.NaN }],
  ["Infinity", { best: Number.POSITIVE_INFINITY }],
  ["a Map", { badges: new Map([["gold", 1]]) }],
  ["a Set", new Set(["gold"])],
  ["undefined in an array", ["a", undefined]],
  ["a class instance", new Player("Ada")],
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
});
