import { connect, type RedisClient } from "@coordis/core";
import { Leaderboard, type LeaderboardOptions, type Period, ScoreOverflowError } from "@coordis/leaderboard";
import { recordObserver, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
let counter = 0;
const fresh = () => `b${++counter}`;

describe.each([
  ["standalone", () => inject("coordisRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl")],
])("Leaderboard on %s", (_label, url) => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(url());
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
  });
  const board = <M = unknown>(options: LeaderboardOptions = {}) =>
    new Leaderboard<M>(redis, fresh(), { prefix, ...options });

  it("best policy keeps the better score, ranks 1-based, returns metadata", async () => {
    const lb = board<{ name: string }>();
    expect(await lb.submit("a", 10, { meta: { name: "Ada" } })).toMatchObject({ score: 10, rank: 1, updated: true });
    expect(await lb.submit("b", 20)).toMatchObject({ score: 20, rank: 1, updated: true });
    expect(await lb.submit("a", 5)).toMatchObject({ score: 10, rank: 2, updated: false });
    expect(await lb.submit("a", 30)).toMatchObject({ score: 30, rank: 1, updated: true });
    expect(await lb.rank("a")).toEqual({ member: "a", score: 30, rank: 1, count: 2, meta: { name: "Ada" } });
    expect(await lb.rank("zz")).toBeNull();
    expect(await lb.top(10)).toEqual([
      { member: "a", score: 30, rank: 1, meta: { name: "Ada" } },
      { member: "b", score: 20, rank: 2, meta: null },
    ]);
    expect(await lb.count()).toBe(2);
  });

  it("asc order ranks the lowest first; replace and increment policies", async () => {
    const asc = board({ order: "asc" });
    await asc.submit("a", 3);
    await asc.submit("b", 1);
    await asc.submit("a", 2);
    expect((await asc.top(5)).map((e) => [e.member, e.score])).toEqual([
      ["b", 1],
      ["a", 2],
    ]);
    const rep = board({ update: "replace" });
    await rep.submit("a", 50);
    expect(await rep.submit("a", 7)).toMatchObject({ score: 7, updated: true });
    expect(await rep.submit("a", 7)).toMatchObject({ score: 7, updated: false });
    const inc = board({ update: "increment" });
    await inc.submit("a", 1.5);
    expect(await inc.submit("a", 2)).toMatchObject({ score: 3.5, updated: true });
    expect(await inc.submit("a", -10)).toMatchObject({ score: -6.5, rank: 1 });
  });

  it.each([
    ["desc", [2 ** 50, 1e300, -1e300, -(2 ** 50) - 2, 0, Number.MIN_VALUE, -Number.MAX_VALUE, Number.MAX_VALUE]],
    ["asc", [2 ** 50, 1e300, -1e300, -(2 ** 50) - 2, 0, Number.MIN_VALUE, -Number.MAX_VALUE, Number.MAX_VALUE]],
  ] as const)("ties by arrival at large and negative scores (%s)", async (order, scores) => {
    const lb = board({ order, update: "replace" });
    // Three members per score, arriving c, a, b: the arrival order must win over the lexical one.
    const items = scores.flatMap((s) => ["c", "a", "b"].map((m) => ({ member: `${m}${s}`, score: s })));
    await lb.submitMany(items);
    const sorted = [...scores].sort((x, y) => (order === "desc" ? y - x : x - y));
    const expected = sorted.flatMap((s) => ["c", "a", "b"].map((m) => ({ member: `${m}${s}`, score: s })));
    const top = await lb.top(100);
    expect(top.map((e) => ({ member: e.member, score: e.score }))).toEqual(expected);
    expect(top.map((e) => e.rank)).toEqual(expected.map((_, i) => i + 1));
    // A member re-reaching the same score later goes behind the ones already there.
    const first = expected[0] as { member: string; score: number };
    await lb.submit(first.member, 1);
    await lb.submit(first.member, first.score);
    const again = await lb.rank(first.member);
    expect(again?.rank).toBe(3);
  });

  it("page, around and percentile", async () => {
    const lb = board<{ n: number }>();
    await lb.submitMany(Array.from({ length: 25 }, (_, i) => ({ member: `m${i}`, score: i, meta: { n: i } })));
    const p2 = await lb.page(2, 10);
    expect(p2.map((e) => e.member)).toEqual(Array.from({ length: 10 }, (_, i) => `m${14 - i}`));
    expect(p2[0]).toEqual({ member: "m14", score: 14, rank: 11, meta: { n: 14 } });
    expect((await lb.page(3, 10)).length).toBe(5);
    expect(await lb.page(4, 10)).toEqual([]);
    const around = await lb.around("m23", 3);
    expect(around.map((e) => [e.member, e.rank])).toEqual([
      ["m24", 1],
      ["m23", 2],
      ["m22", 3],
      ["m21", 4],
      ["m20", 5],
    ]);
    expect(await lb.around("nobody", 3)).toEqual([]);
    expect((await lb.percentile("m24"))?.percentile).toBe(100);
    expect((await lb.percentile("m0"))?.percentile).toBe(0);
    expect((await lb.percentile("m12"))?.percentile).toBe(50);
  });

  // Without stored metadata the read scripts join their rows with "\0" into one string, unless an element holds a
  // "\0" itself; members with separators must read back exactly either way, on the all-time and a period board.
  it.each([
    ["all", false],
    ["all", true],
    ["daily", false],
    ["daily", true],
  ] as const)(
    "members holding \\0, ':' or spaces read back exactly (%s board, metadata %s)",
    async (period, withMeta) => {
      const lb = board<number>({ periods: [period] });
      const odd = ["nul\0inside", "\0", "a:b", "two words", "0000000000000001:x", "é\0\0ü"];
      for (const [i, m] of odd.entries()) await lb.submit(m, i * 0.5, withMeta ? { meta: i } : undefined);
      await lb.submit("plain", 100);
      const want = ["plain", ...odd.slice().reverse()].map((member, i) => ({
        member,
        score: member === "plain" ? 100 : odd.indexOf(member) * 0.5,
        rank: i + 1,
        meta: withMeta && member !== "plain" ? odd.indexOf(member) : null,
      }));
      expect(await lb.top(10)).toEqual(want);
      expect(await lb.page(2, 3)).toEqual(want.slice(3, 6));
      expect(await lb.around("a:b", 1)).toEqual(want.slice(3, 6));
      expect(await lb.around("plain", 2)).toEqual(want.slice(0, 3));
      expect(await lb.rank("\0")).toEqual({ ...want[5], count: 7 });
      expect(await lb.rank("nul\0inside")).toEqual({ ...want[6], count: 7 });
      expect(await lb.rank("missing")).toBeNull();
      expect(await lb.around("missing", 3)).toEqual([]);
      expect(await lb.count()).toBe(7);
      // Only plain members: the joined reply.
      const plain = board({ periods: [period] });
      for (let i = 0; i < 4; i++) await plain.submit(`p${i}`, i);
      expect((await plain.top(2)).map((e) => [e.member, e.score, e.rank])).toEqual([
        ["p3", 3, 1],
        ["p2", 2, 2],
      ]);
      expect((await plain.around("p0", 1)).map((e) => e.rank)).toEqual([3, 4]);
      expect(await plain.top(1, { period })).toHaveLength(1);
      expect(await board({ periods: [period] }).top(5)).toEqual([]);
    },
  );

  it("setMeta renames a member on every board without touching a score, only for a member it knows", async () => {
    const lb = board<{ name: string }>({ periods: ["daily", "all"] });
    await lb.submit("a", 10, { meta: { name: "Ada" } });
    await lb.submit("b", 20);
    const daily = await lb.top(5);
    expect(await lb.setMeta("a", { name: "Lovelace" })).toBe(true);
    expect(await lb.setMeta("b", { name: "Bo" })).toBe(true); // on the boards, without metadata until now
    for (const period of lb.periods) {
      expect(await lb.top(5, { period })).toEqual([
        { member: "b", score: 20, rank: 1, meta: { name: "Bo" } },
        { member: "a", score: 10, rank: 2, meta: { name: "Lovelace" } },
      ]);
    }
    expect((await lb.top(5)).map((e) => e.score)).toEqual(daily.map((e) => e.score));
    // A member the leaderboard does not know gets nothing stored (nothing would ever delete it).
    expect(await lb.setMeta("ghost", { name: "Nobody" })).toBe(false);
    await lb.submit("ghost", 1);
    expect((await lb.rank("ghost"))?.meta).toBeNull();
    await expect(lb.setMeta("a", { name: "x".repeat(2_000) })).rejects.toMatchObject({ argument: "meta" });
    expect((await lb.rank("a"))?.meta).toEqual({ name: "Lovelace" });
  });

  it("remove deletes the member and its metadata from every board", async () => {
    const lb = board<string>({ periods: ["daily", "all", "weekly", "monthly"] });
    await lb.submit("a", 1, { meta: "A" });
    await lb.submit("b", 2);
    expect(await lb.remove("a")).toBe(true);
    expect(await lb.remove("a")).toBe(false);
    for (const period of lb.periods) {
      expect(await lb.rank("a", { period })).toBeNull();
      expect(await lb.count({ period })).toBe(1);
    }
    await lb.submit("a", 1);
    expect((await lb.rank("a"))?.meta).toBeNull();
  });

  // Two boards take the submit script's general path; the all-time board alone its single-item path.
  it.each([[["all", "daily"] as Period[]], [["all"] as Period[]]])(
    "increment overflow past 2^53 is rejected before anything changes (periods %j)",
    async (periods) => {
      const lb = board({ update: "increment", periods });
      await lb.submit("a", 2 ** 53 - 2);
      const err = await lb.submit("a", 2).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ScoreOverflowError);
      expect((err as ScoreOverflowError).code).toBe("ERR_LEADERBOARD_SCORE_OVERFLOW");
      // In a batch, the overflow of a later item rolls back nothing because nothing was written.
      const batch = await lb
        .submitMany([
          { member: "b", score: 5 },
          { member: "a", score: 1 },
          { member: "a", score: 1 },
        ])
        .catch((e: unknown) => e);
      expect(batch).toBeInstanceOf(ScoreOverflowError);
      expect(await lb.rank("b")).toBeNull();
      expect((await lb.rank("a"))?.score).toBe(2 ** 53 - 2);
      expect(await lb.submit("a", 1)).toMatchObject({ score: 2 ** 53 - 1 });
      expect(await lb.submit("a", -(2 ** 53 - 1))).toMatchObject({ score: 0 });
      expect(await lb.submit("a", -(2 ** 53 - 1))).toMatchObject({ score: -(2 ** 53 - 1) });
      expect(await lb.submit("a", -1).catch((e: unknown) => e)).toBeInstanceOf(ScoreOverflowError);
      expect((await lb.rank("a", { period: periods[periods.length - 1] }))?.score).toBe(-(2 ** 53 - 1));
    },
  );

  it("reports submits and queries to the observer", async () => {
    const observer = recordObserver();
    const { ops: events } = observer;
    const lb = board({ observer });
    await lb.submit("a", 1);
    await lb.submit("a", 0);
    await lb.rank("a");
    await lb.rank("b");
    await lb.top(3);
    await lb.count();
    expect(events.map((e) => [e.op, e.outcome])).toEqual([
      ["submit", "updated"],
      ["submit", "unchanged"],
      ["rank", "ok"],
      ["rank", "missing"],
      ["top", "ok"],
      ["count", "ok"],
    ]);
    expect(events.every((e) => e.primitive === "leaderboard" && e.durationMs >= 0)).toBe(true);
    expect(events[2]?.attributes).toEqual({ period: "all" });
  });
});
