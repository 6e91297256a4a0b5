import { connect, entityKeys, type RedisClient } from "@coordis/core";
import { Leaderboard, periodBucket } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { previousRange, previousRank, previousSubmit } from "./fixtures/previous-scripts.js";

const prefix = testPrefix("lbupgrade");
const DAY = 86_400_000;
const LIMIT = 2 ** 53;

// Rolling upgrade: replicas of the previous release (its scripts, its argument layout) submit to and read the same
// boards as upgraded ones. The stored formats are the same (element "<16-digit arrival prefix>:<member>", index
// hash, arrival counter), so scores, ties by arrival and metadata agree whichever release wrote them.
describe("submits and reads of the previous release and this one, side by side", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("interleaved submits rank ties by arrival on the all-time and a daily board, read by either release", async () => {
    const name = "up";
    const at = Date.now();
    const lb = new Leaderboard<number>(redis, name, { prefix, periods: ["all", "daily"], graceMs: DAY });
    const keys = entityKeys(prefix, "lb", name);
    const day = periodBucket("daily", at);
    const all = keys.sub("all");
    const daily = keys.sub("daily", day.id);
    const boardKeys = [all, `${all}:idx`, daily, `${daily}:idx`];
    // Previous layout: update, order, P, B, N, toleranceMs, per board (period, start, end, expireAt), per item.
    const previous = (member: string, score: number, meta = "") =>
      redis.eval(
        previousSubmit,
        6,
        keys.sub("meta"),
        keys.sub("seq"),
        ...boardKeys,
        "best",
        "desc",
        2,
        2,
        1,
        1000,
        1,
        -LIMIT,
        LIMIT,
        0,
        2,
        day.startMs,
        day.endMs,
        day.endMs + DAY,
        member,
        score,
        meta,
        at,
      );
    expect(await previous("a", 10, "1")).toEqual([["10", 1, 1, 1, "10", 1, 1, 2]]);
    expect(await lb.submit("b", 10, { at })).toMatchObject({ score: 10, rank: 2, updated: true });
    expect(await previous("c", 10)).toEqual([["10", 3, 1, 1, "10", 3, 1, 2]]);
    expect(await lb.submit("a", 5, { at })).toMatchObject({ score: 10, rank: 1, updated: false });
    expect(await previous("b", 20)).toEqual([["20", 1, 1, 1, "20", 1, 1, 2]]);
    expect(await lb.submit("d", 10, { at })).toMatchObject({ score: 10, rank: 4, updated: true });
    expect(await previous("d", 10)).toEqual([["10", 4, 0, 1, "10", 4, 0, 2]]);
    const want = [
      { member: "b", score: 20, rank: 1, meta: null },
      { member: "a", score: 10, rank: 2, meta: 1 },
      { member: "c", score: 10, rank: 3, meta: null },
      { member: "d", score: 10, rank: 4, meta: null },
    ];
    expect(await lb.top(10)).toEqual(want);
    expect(await lb.top(10, { period: "daily", at })).toEqual(want);
    expect(await lb.around("c", 1, { period: "daily", at })).toEqual(want.slice(1, 4));
    // The previous release's reads of what both wrote.
    const rank = await redis.eval(
      previousRank,
      3,
      keys.sub("meta"),
      all,
      `${all}:idx`,
      "desc",
      0,
      1,
      "a",
      -LIMIT,
      LIMIT,
    );
    expect(rank).toEqual(["10", 2, 4, "1"]);
    const range = (await redis.eval(
      previousRange,
      3,
      keys.sub("meta"),
      daily,
      `${daily}:idx`,
      "desc",
      at,
      1,
      0,
      9,
      day.startMs,
      day.endMs,
    )) as [number, string[], (string | null)[]];
    expect(range[0]).toBe(4);
    expect(range[1].filter((_, i) => i % 2 === 0).map((e) => e.slice(17))).toEqual(["b", "a", "c", "d"]);
    expect(range[2]).toEqual([null, "1", null, null]);
  });
});
