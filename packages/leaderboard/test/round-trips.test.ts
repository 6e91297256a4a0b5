import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { Leaderboard, MAX_BATCH } from "@coordis/leaderboard";
import { countCommands, type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("round trips and input validation on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let lb: Leaderboard<{ name: string }>;
  let inc: Leaderboard;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    await redis.ping();
    lb = new Leaderboard(redis, "rt", { prefix, periods: ["daily", "weekly", "monthly", "all"] });
    inc = new Leaderboard(redis, "rt-inc", { prefix, update: "increment" });
    // Warm the script cache so every call below is a single EVALSHA.
    await lb.submitMany(Array.from({ length: 20 }, (_, i) => ({ member: `w${i}`, score: i, meta: { name: `W${i}` } })));
    await Promise.all([
      lb.rank("w1"),
      lb.top(1),
      lb.around("w1", 1),
      lb.count(),
      lb.remove("nobody"),
      lb.setMeta("nobody", { name: "N" }),
      inc.submit("x", 1),
    ]);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it.each([
    ["submit", () => lb.submit("a", 5, { meta: { name: "A" } })],
    ["submit with at", () => lb.submit("a", 6, { at: Date.now() })],
    ["submitMany", () => lb.submitMany(Array.from({ length: 50 }, (_, i) => ({ member: `m${i}`, score: i })))],
    ["rank", () => lb.rank("a")],
    ["percentile", () => lb.percentile("a", { period: "all" })],
    ["top", () => lb.top(10)],
    ["page", () => lb.page(2, 5, { period: "weekly" })],
    ["around", () => lb.around("a", 3, { period: "monthly" })],
    ["count", () => lb.count({ period: "all" })],
    ["remove", () => lb.remove("m3")],
    ["setMeta", () => lb.setMeta("a", { name: "Ada" })],
    ["increment", () => inc.submit("x", 2)],
  ])("%s is one round trip (one EVALSHA)", async (_op, call) => {
    const { roundTrips, sent } = await countCommands(server, call as () => Promise<unknown>);
    expect(sent).toEqual({ evalsha: 1 });
    expect(roundTrips).toBe(1);
  });

  const bad: Array<[string, string, () => Promise<unknown>]> = [
    ["NaN score", "score", () => lb.submit("a", Number.NaN)],
    ["infinite score", "score", () => lb.submit("a", Number.POSITIVE_INFINITY)],
    ["string score", "score", () => lb.submit("a", "5" as unknown as number)],
    ["increment past 2^53", "score", () => inc.submit("a", 2 ** 53)],
    ["empty member", "member", () => lb.submit("", 1)],
    ["oversized member", "member", () => lb.submit("x".repeat(513), 1)],
    ["lone surrogate member", "member", () => lb.rank("\ud800")],
    ["oversized meta", "meta", () => lb.submit("a", 1, { meta: { name: "x".repeat(1100) } })],
    ["unserialisable meta", "meta", () => lb.submit("a", 1, { meta: { name: 1n } as unknown as { name: string } })],
    ["fractional at", "at", () => lb.submit("a", 1, { at: 1.5 })],
    // Past the last instant period buckets exist for (8.6e15 ms, about year 274,500): named `at`, not the bucket
    // arithmetic's `atMs`.
    ["at past the calendar", "at", () => lb.submit("a", 1, { at: 8.62e15 })],
    ["submitMany at past the calendar", "items[0].at", () => lb.submitMany([{ member: "a", score: 1, at: 8.64e15 }])],
    ["query at past the calendar", "options.at", () => lb.rank("a", { at: 8.64e15 })],
    ["n = 0", "n", () => lb.top(0)],
    ["n too large", "n", () => lb.top(MAX_BATCH + 1)],
    ["size = 0", "size", () => lb.page(1, 0)],
    ["page = 0", "page", () => lb.page(0, 10)],
    ["negative radius", "radius", () => lb.around("a", -1)],
    ["radius too large", "radius", () => lb.around("a", 501)],
    ["unknown period", "options.period", () => lb.count({ period: "hourly" as "all" })],
    ["empty batch", "items", () => lb.submitMany([])],
    [
      "batch too large",
      "items",
      () => lb.submitMany(Array.from({ length: MAX_BATCH + 1 }, () => ({ member: "a", score: 1 }))),
    ],
    // Unknown option keys (typos) are rejected, naming the key, instead of silently meaning the default.
    ["submit({ metta })", "options.metta", () => lb.submit("a", 1, { metta: { name: "A" } } as never)],
    ["submit({ at, when })", "options.when", () => lb.submit("a", 1, { at: Date.now(), when: 1 } as never)],
    ["rank({ perod })", "options.perod", () => lb.rank("a", { perod: "all" } as never)],
    ["percentile({ perod })", "options.perod", () => lb.percentile("a", { perod: "all" } as never)],
    ["top({ perod })", "options.perod", () => lb.top(3, { perod: "weekly" } as never)],
    ["page({ period, after })", "options.after", () => lb.page(1, 3, { period: "all", after: 1 } as never)],
    ["around({ perod })", "options.perod", () => lb.around("a", 1, { perod: "all" } as never)],
    ["count({ perod })", "options.perod", () => lb.count({ perod: "all" } as never)],
    [
      "submitMany item with { meat }",
      "items[1].meat",
      () => lb.submitMany([{ member: "a", score: 1 }, { member: "b", score: 2, meat: { name: "B" } } as never]),
    ],
    // A hole in the array (or an undefined item) is a missing submission, not a TypeError from deep inside.
    [
      "a hole in submitMany",
      "items[0]",
      () => lb.submitMany(Object.assign(new Array(2), { 1: { member: "b", score: 2 } })),
    ],
    ["submitMany of holes", "items[0]", () => lb.submitMany(new Array(3))],
    ["an undefined submitMany item", "items[1]", () => lb.submitMany([{ member: "a", score: 1 }, undefined as never])],
    [
      "bad item in a batch",
      "items[1].score",
      () =>
        lb.submitMany([
          { member: "a", score: 1 },
          { member: "b", score: Number.NaN },
        ]),
    ],
  ];
  it.each(bad)("%s → InvalidArgumentError, zero commands sent", async (_label, argument, call) => {
    const { result, roundTrips, executed } = await countCommands(server, () => call().catch((e: unknown) => e));
    expect(result).toBeInstanceOf(InvalidArgumentError);
    expect((result as InvalidArgumentError).argument).toMatch(
      new RegExp(`(^|\\.)${argument.replace(/[[\].]/g, "\\$&")}$`),
    );
    expect(roundTrips).toBe(0);
    expect(executed).toEqual({});
  });

  it("rejects bad constructor options", () => {
    const make = (o: object) => () => new Leaderboard(redis, "x", { prefix, ...o });
    expect(make({ order: "up" })).toThrow(InvalidArgumentError);
    expect(make({ update: "max" })).toThrow(InvalidArgumentError);
    expect(make({ periods: [] })).toThrow(InvalidArgumentError);
    expect(make({ periods: ["all", "all"] })).toThrow(InvalidArgumentError);
    expect(make({ periods: ["yearly"] })).toThrow(InvalidArgumentError);
    // A hole in the periods array is no period (it used to construct a leaderboard whose calls all failed).
    expect(make({ periods: new Array(1) })).toThrow(expect.objectContaining({ argument: "options.periods[0]" }));
    expect(make({ periods: Object.assign(new Array(2), { 0: "daily" }) })).toThrow(
      expect.objectContaining({ argument: "options.periods[1]" }),
    );
    expect(make({ ties: "latest-first" })).toThrow(InvalidArgumentError);
    expect(make({ timeZoneOffsetMinutes: 900 })).toThrow(InvalidArgumentError);
    expect(make({ metaMaxBytes: 0 })).toThrow(InvalidArgumentError);
    expect(make({ graceMs: 365 * 86_400_000 })).toThrow(InvalidArgumentError);
    expect(make({ prefix: "bad prefix" })).toThrow(InvalidArgumentError);
    expect(() => new Leaderboard(redis, "a{b}", { prefix })).toThrow(InvalidArgumentError);
  });

  it.each([
    [{ updte: "increment" }, "options.updte"],
    [{ perods: ["daily"] }, "options.perods"],
    [{ prefx: "other" }, "options.prefx"],
    [{ grace: 1000 }, "options.grace"],
    [{ batch: { maxsize: 8 } }, "options.batch.maxsize"],
  ])("an unknown constructor option %o is an InvalidArgumentError naming %s", (options, argument) => {
    let caught: unknown;
    try {
      new Leaderboard(redis, "typo", { prefix, ...(options as object) });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).argument).toBe(argument);
    expect((caught as Error).message).toContain("unknown option");
  });
});
