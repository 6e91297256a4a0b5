import { connect, type RedisClient } from "@coordis/core";
import {
  ClockSkewError,
  Leaderboard,
  type LeaderboardOptions,
  PeriodClosedError,
  periodBucket,
} from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";

const DAY = 86_400_000;
const utc = (s: string) => Date.parse(s);

describe("periodBucket (calendar arithmetic)", () => {
  it("days, ISO weeks and months in UTC", () => {
    expect(periodBucket("daily", utc("2024-02-29T23:59:59.999Z"))).toEqual({
      period: "daily",
      id: "2024-02-29",
      startMs: utc("2024-02-29T00:00:00Z"),
      endMs: utc("2024-03-01T00:00:00Z"),
    });
    expect(periodBucket("monthly", utc("2024-02-10T12:00:00Z"))).toMatchObject({
      id: "2024-02",
      startMs: utc("2024-02-01T00:00:00Z"),
      endMs: utc("2024-03-01T00:00:00Z"),
    });
    expect(periodBucket("monthly", utc("2024-12-31T23:00:00Z")).endMs).toBe(utc("2025-01-01T00:00:00Z"));
    // ISO weeks start on Monday and belong to the year of their Thursday.
    expect(periodBucket("weekly", utc("2024-12-29T23:59:59Z")).id).toBe("2024-W52");
    expect(periodBucket("weekly", utc("2024-12-30T00:00:00Z"))).toMatchObject({
      id: "2025-W01",
      startMs: utc("2024-12-30T00:00:00Z"),
      endMs: utc("2025-01-06T00:00:00Z"),
    });
    expect(periodBucket("weekly", utc("2021-01-03T12:00:00Z")).id).toBe("2020-W53");
    expect(periodBucket("weekly", utc("2026-11-26T12:00:00Z")).id).toBe("2026-W48");
    expect(periodBucket("weekly", utc("1969-12-29T00:00:00Z")).id).toBe("1970-W01");
    expect(periodBucket("all", 123)).toMatchObject({ id: "all", startMs: -(2 ** 53), endMs: 2 ** 53 });
  });

  it("a time-zone offset moves every boundary to local midnight", () => {
    // 22:30 UTC is 00:30 the next day at UTC+2.
    expect(periodBucket("daily", utc("2024-01-01T22:30:00Z"), 120)).toMatchObject({
      id: "2024-01-02",
      startMs: utc("2024-01-01T22:00:00Z"),
      endMs: utc("2024-01-02T22:00:00Z"),
    });
    expect(periodBucket("daily", utc("2024-01-01T21:59:59Z"), 120).id).toBe("2024-01-01");
    expect(periodBucket("daily", utc("2024-01-02T03:00:00Z"), -300).id).toBe("2024-01-01");
    expect(periodBucket("weekly", utc("2024-12-29T23:00:00Z"), 120).id).toBe("2025-W01");
    expect(periodBucket("monthly", utc("2024-01-31T23:30:00Z"), 60).id).toBe("2024-02");
  });
});

describe.each([
  ["standalone", () => inject("coordisRedisUrl"), () => inject("coordisAdminRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl"), () => inject("coordisAdminClusterUrl")],
])("period boards on %s", (_label, url, adminUrl) => {
  const prefix = testPrefix();
  let counter = 0;
  let redis: RedisClient;
  /** Unrestricted, to read expiry times (PEXPIRETIME is not among the commands Coordis is granted). */
  let admin: RedisClient;
  beforeAll(async () => {
    redis = connect(url());
    admin = connect(adminUrl());
    await Promise.all([redis.ping(), admin.ping()]);
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  const board = (options: LeaderboardOptions) => {
    const name = `p${++counter}`;
    return { lb: new Leaderboard(redis, name, { prefix, graceMs: 60 * DAY, ...options }), name };
  };
  const now = Date.now();
  const midnight = Math.floor(now / DAY) * DAY;
  const monday = midnight - ((Math.floor(now / DAY) + 3) % 7) * DAY;
  const firstOfMonth = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);

  it.each([
    ["daily", midnight],
    ["weekly", monday],
    ["monthly", firstOfMonth],
  ] as const)("submits with `at` on both sides of a %s boundary land in their own boards", async (period, boundary) => {
    const { lb } = board({ periods: [period, "all"] });
    const before = await lb.submit("early", 10, { at: boundary - 1 });
    const after = await lb.submit("late", 5, { at: boundary });
    expect(before.bucket).toBe(periodBucket(period, boundary - 1).id);
    expect(after.bucket).toBe(periodBucket(period, boundary).id);
    expect(before.bucket).not.toBe(after.bucket);
    expect(after).toMatchObject({ rank: 1, periods: { all: { rank: 2, bucket: "all" } } });
    expect(await lb.top(10, { period, at: boundary - 1 })).toMatchObject([{ member: "early", rank: 1 }]);
    expect(await lb.top(10, { period, at: boundary })).toMatchObject([{ member: "late", rank: 1 }]);
    expect(await lb.count({ period: "all" })).toBe(2);
    // The default board of a query is the current one (by Redis time): it holds "late" (the boundary is the
    // latest one), unless the clock has passed the next boundary since.
    if (periodBucket(period, Date.now()).id === after.bucket) expect(await lb.count()).toBe(1);
  });

  it("a time-zone offset moves the daily boundary", async () => {
    const at = midnight - 90 * 60_000; // 22:30 UTC yesterday = 00:30 today at UTC+2
    const plus2 = board({ periods: ["daily"], timeZoneOffsetMinutes: 120 }).lb;
    const utcBoard = board({ periods: ["daily"] }).lb;
    expect((await plus2.submit("a", 1, { at })).bucket).toBe(periodBucket("daily", midnight).id);
    expect((await utcBoard.submit("a", 1, { at })).bucket).toBe(periodBucket("daily", midnight - 1).id);
    expect(await plus2.rank("a", { at: midnight + 60_000 })).toMatchObject({ rank: 1 });
    expect(await utcBoard.rank("a", { at: midnight + 60_000 })).toBeNull();
  });

  it("period keys expire at the end of their period plus the grace; the all-time board never expires", async () => {
    const { lb, name } = board({ periods: ["all", "daily", "weekly", "monthly"], graceMs: 3 * DAY });
    const result = await lb.submit("a", 1, { at: now });
    for (const period of ["daily", "weekly", "monthly"] as const) {
      const bucket = periodBucket(period, now);
      expect(result.periods[period]?.bucket).toBe(bucket.id);
      const key = `${prefix}:lb:{${name}}:${period}:${bucket.id}`;
      expect(await admin.pexpiretime(key)).toBe(bucket.endMs + 3 * DAY);
      expect(await admin.pexpiretime(`${key}:idx`)).toBe(bucket.endMs + 3 * DAY);
    }
    expect(await redis.pttl(`${prefix}:lb:{${name}}:all`)).toBe(-1);
  });

  it("rejects an `at` whose board has closed, or that lies in the future, writing nothing", async () => {
    const { lb } = board({ periods: ["all", "daily"], graceMs: DAY });
    const late = await lb.submit("a", 1, { at: now - 3 * DAY }).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(PeriodClosedError);
    expect((late as PeriodClosedError).code).toBe("ERR_LEADERBOARD_PERIOD_CLOSED");
    const future = await lb.submit("a", 1, { at: now + DAY }).catch((e: unknown) => e);
    expect(future).toBeInstanceOf(PeriodClosedError);
    expect(await lb.count({ period: "all" })).toBe(0);
    // Within the grace a late event still counts on its (past) board.
    expect(await lb.submit("a", 1, { at: now - DAY / 2 })).toMatchObject({ rank: 1 });
  });

  it("uses Redis server time without `at`, and fails with ClockSkewError when the local clock is far off", async () => {
    const { lb } = board({ periods: ["daily", "all"] });
    const before = Date.now();
    const result = await lb.submit("a", 1);
    const after = Date.now();
    expect([periodBucket("daily", before).id, periodBucket("daily", after).id]).toContain(result.bucket);
    vi.spyOn(Date, "now").mockReturnValue(after + 2 * DAY);
    const err = await lb.submit("b", 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClockSkewError);
    expect(await lb.rank("x").catch((e: unknown) => e)).toBeInstanceOf(ClockSkewError);
    vi.restoreAllMocks();
    expect(await lb.count({ period: "all" })).toBe(1);
  });
});
