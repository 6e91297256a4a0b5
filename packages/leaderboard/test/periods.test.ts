import { connect, type RedisClient } from "@coordis/core";
import {
  ClockSkewError,
  Leaderboard,
  type LeaderboardOptions,
  type Period,
  PeriodClosedError,
  periodBucket,
} from "@coordis/leaderboard";
import { mulberry32, randomSeed, testPrefix } from "@coordis/testing";
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

/** UTC midnight of a civil date, any year (setUTCFullYear does not map years 0–99 to 1900–1999 as Date.UTC does). */
function civilMs(year: number, month: number, day: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  return d.getTime();
}

/** An independent model of periodBucket built on Date's UTC getters and setUTCFullYear. */
function modelBucket(period: "daily" | "weekly" | "monthly", atMs: number, offsetMinutes: number) {
  const offsetMs = offsetMinutes * 60_000;
  const local = new Date(atMs + offsetMs);
  const [y, m, d] = [local.getUTCFullYear(), local.getUTCMonth() + 1, local.getUTCDate()];
  const year = (n: number) => (n < 0 ? `-${String(-n).padStart(4, "0")}` : String(n).padStart(4, "0"));
  const two = (n: number) => String(n).padStart(2, "0");
  const midnight = civilMs(y, m, d);
  if (period === "daily") {
    return { id: `${year(y)}-${two(m)}-${two(d)}`, startMs: midnight - offsetMs, endMs: midnight + DAY - offsetMs };
  }
  if (period === "weekly") {
    const monday = midnight - ((local.getUTCDay() + 6) % 7) * DAY;
    const thursday = new Date(monday + 3 * DAY);
    const isoYear = thursday.getUTCFullYear();
    const week = Math.floor((thursday.getTime() - civilMs(isoYear, 1, 1)) / (7 * DAY)) + 1;
    return { id: `${year(isoYear)}-W${two(week)}`, startMs: monday - offsetMs, endMs: monday + 7 * DAY - offsetMs };
  }
  return { id: `${year(y)}-${two(m)}`, startMs: civilMs(y, m, 1) - offsetMs, endMs: civilMs(y, m + 1, 1) - offsetMs };
}

describe("periodBucket in years 0–100 and before year 0", () => {
  it("days, months and leap years", () => {
    expect(periodBucket("daily", civilMs(0, 1, 1))).toMatchObject({ id: "0000-01-01", startMs: civilMs(0, 1, 1) });
    expect(periodBucket("daily", civilMs(0, 1, 1) - 1)).toMatchObject({
      id: "-0001-12-31",
      endMs: civilMs(0, 1, 1),
    });
    expect(periodBucket("daily", civilMs(4, 2, 29) + 5)).toMatchObject({
      id: "0004-02-29",
      startMs: civilMs(4, 2, 29),
      endMs: civilMs(4, 3, 1),
    });
    // Year 0 is a leap year (divisible by 400), 1 and 100 are not, 4 is.
    const feb = (y: number) => periodBucket("monthly", civilMs(y, 2, 10));
    expect(feb(0)).toMatchObject({ id: "0000-02", startMs: civilMs(0, 2, 1), endMs: civilMs(0, 2, 1) + 29 * DAY });
    expect(feb(1)).toMatchObject({ id: "0001-02", startMs: civilMs(1, 2, 1), endMs: civilMs(1, 2, 1) + 28 * DAY });
    expect(feb(4)).toMatchObject({ id: "0004-02", endMs: civilMs(4, 2, 1) + 29 * DAY });
    expect(feb(100)).toMatchObject({ id: "0100-02", startMs: civilMs(100, 2, 1), endMs: civilMs(100, 3, 1) });
    expect(civilMs(100, 3, 1) - civilMs(100, 2, 1)).toBe(28 * DAY);
    expect(periodBucket("monthly", civilMs(99, 12, 31) + DAY - 1)).toMatchObject({
      id: "0099-12",
      startMs: civilMs(99, 12, 1),
      endMs: civilMs(100, 1, 1),
    });
    expect(periodBucket("monthly", civilMs(100, 1, 1))).toMatchObject({ id: "0100-01", startMs: civilMs(100, 1, 1) });
    // At UTC+2, 23:30 UTC on 0099-12-31 is already January of year 100.
    expect(periodBucket("monthly", civilMs(99, 12, 31) + 23.5 * 3_600_000, 120)).toMatchObject({
      id: "0100-01",
      startMs: civilMs(100, 1, 1) - 7_200_000,
    });
  });

  it("ISO weeks around the turn of years 0, 1, 99 and 100", () => {
    // 0001-01-01 was a Monday: week 1 of ISO year 1.
    expect(periodBucket("weekly", civilMs(1, 1, 1))).toMatchObject({
      id: "0001-W01",
      startMs: civilMs(1, 1, 1),
      endMs: civilMs(1, 1, 8),
    });
    expect(periodBucket("weekly", civilMs(1, 1, 1) - 1)).toMatchObject({ id: "0000-W52", endMs: civilMs(1, 1, 1) });
    // 0001-12-31 (a Monday) starts week 1 of ISO year 2.
    expect(periodBucket("weekly", civilMs(1, 12, 31))).toMatchObject({ id: "0002-W01", startMs: civilMs(1, 12, 31) });
    expect(periodBucket("weekly", civilMs(99, 1, 4)).id).toBe("0099-W01");
    expect(periodBucket("weekly", civilMs(99, 12, 27)).id).toBe("0099-W52");
    // 0100-01-01 (a Friday) lies in week 53 of ISO year 99, which runs Monday 0099-12-28 to 0100-01-04.
    expect(periodBucket("weekly", civilMs(100, 1, 1))).toMatchObject({
      id: "0099-W53",
      startMs: civilMs(99, 12, 28),
      endMs: civilMs(100, 1, 4),
    });
    expect(periodBucket("weekly", civilMs(100, 3, 1)).id).toBe("0100-W09");
  });

  it("matches an independent Date-based model over random instants and offsets; buckets tile the timeline", () => {
    const seed = randomSeed();
    const random = mulberry32(seed);
    const year0 = civilMs(-2, 1, 1);
    const year102 = civilMs(102, 1, 1);
    for (let i = 0; i < 6_000; i++) {
      // Half the samples in years -2..101 (where Date.UTC misleads), half anywhere in the supported range.
      const atMs =
        i % 2 === 0 ? Math.floor(year0 + random() * (year102 - year0)) : Math.floor((random() * 2 - 1) * 8.6e15);
      const offset = Math.floor(random() * 1_681) - 840;
      for (const period of ["daily", "weekly", "monthly"] as const) {
        const actual = periodBucket(period, atMs, offset);
        const context = `seed ${seed}: ${period} at ${atMs} offset ${offset}`;
        expect({ id: actual.id, startMs: actual.startMs, endMs: actual.endMs }, context).toEqual(
          modelBucket(period, atMs, offset),
        );
        expect(actual.startMs <= atMs && atMs < actual.endMs, context).toBe(true);
        // Neighbouring buckets meet exactly (the submit script picks the board whose [startMs, endMs) holds a time).
        if (actual.endMs < 8.6e15)
          expect(periodBucket(period, actual.endMs, offset).startMs, context).toBe(actual.endMs);
        if (actual.startMs > -8.6e15)
          expect(periodBucket(period, actual.startMs - 1, offset).endMs, context).toBe(actual.startMs);
      }
    }
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

  // Two boards take the submit script's general path; the daily board alone its single-item path.
  it.each([[["all", "daily"] as Period[]], [["daily"] as Period[]]])(
    "rejects an `at` whose board has closed, or that lies in the future, writing nothing (periods %j)",
    async (periods) => {
      const { lb, name } = board({ periods, graceMs: DAY });
      const late = await lb.submit("a", 1, { at: now - 3 * DAY }).catch((e: unknown) => e);
      expect(late).toBeInstanceOf(PeriodClosedError);
      expect((late as PeriodClosedError).code).toBe("ERR_LEADERBOARD_PERIOD_CLOSED");
      const future = await lb.submit("a", 1, { at: now + DAY }).catch((e: unknown) => e);
      expect(future).toBeInstanceOf(PeriodClosedError);
      expect(await lb.count({ period: periods[0] })).toBe(0);
      // Within the grace a late event still counts on its (past) board, which expires graceMs after its end.
      const result = await lb.submit("a", 1, { at: now - DAY / 2 });
      expect(result).toMatchObject({ rank: 1, updated: true });
      const bucket = periodBucket("daily", now - DAY / 2);
      expect(result.periods.daily?.bucket).toBe(bucket.id);
      const key = `${prefix}:lb:{${name}}:daily:${bucket.id}`;
      expect(await admin.pexpiretime(key)).toBe(bucket.endMs + DAY);
      expect(await admin.pexpiretime(`${key}:idx`)).toBe(bucket.endMs + DAY);
    },
  );

  // The error text of a closed period must not carry the leaderboard's name: a name holding words that mean "Redis is
  // unavailable" (LOADING, BUSY) or another error's code turned PeriodClosedError into RedisUnavailableError (so a
  // caller would retry a call that can never succeed) or, batched, into ScoreOverflowError. Every submit path.
  const closedRoutes = {
    "one board": { periods: ["daily"], batch: false, items: 1 },
    "one board per period": { periods: ["daily", "all"], batch: false, items: 1 },
    "two items in one call": { periods: ["daily", "all"], batch: false, items: 2 },
    "batched, one board": { periods: ["daily"], batch: true, items: 2 },
    "batched, one board per period": { periods: ["daily", "all"], batch: true, items: 2 },
    "batched, two days": { periods: ["daily", "all"], batch: true, items: 3 },
  } as const;
  it.each(Object.keys(closedRoutes) as (keyof typeof closedRoutes)[])(
    "a closed period is a PeriodClosedError whatever the leaderboard's name (%s)",
    async (route) => {
      const { periods, batch, items } = closedRoutes[route];
      const name = `LOADING BUSY LB_OVERFLOW LB_CLOCK_SKEW ${++counter}`;
      const lb = new Leaderboard(redis, name, { prefix, periods: [...periods], graceMs: DAY, batch });
      const closed = now - 3 * DAY;
      const calls =
        route === "two items in one call"
          ? [lb.submitMany([0, 1].map((i) => ({ member: `m${i}`, score: i, at: closed })))]
          : route === "batched, two days"
            ? [lb.submit("m0", 1, { at: closed }), lb.submit("m1", 1, { at: now }), lb.submit("m2", 1, { at: closed })]
            : Array.from({ length: items }, (_, i) => lb.submit(`m${i}`, i, { at: closed }));
      const settled = await Promise.allSettled(calls);
      const failed = settled.filter((s) => s.status === "rejected").map((s) => s.reason as Error);
      expect(failed.length).toBe(route === "batched, two days" ? 2 : calls.length);
      for (const err of failed) {
        expect(err).toBeInstanceOf(PeriodClosedError);
        expect((err as PeriodClosedError).code).toBe("ERR_LEADERBOARD_PERIOD_CLOSED");
      }
      expect(await lb.count({ period: periods[periods.length - 1], at: now })).toBe(
        route === "batched, two days" ? 1 : 0,
      );
    },
  );

  // Every path that rewrites an entry: the submit script's single-item path (the daily board alone) and general path
  // (two boards; two items in one call), submit-batch's single-item path (a batch of one) and general path (three).
  const routes = {
    single: async (lb: Leaderboard) => {
      for (const score of [10, 20, 30]) await lb.submit("alice", score, { at: now });
    },
    "two boards": async (lb: Leaderboard) => {
      for (const score of [10, 20, 30]) await lb.submit("alice", score, { at: now });
    },
    "two items in one call": async (lb: Leaderboard) => {
      await lb.submit("alice", 10, { at: now });
      await lb.submitMany([20, 30].map((score) => ({ member: "alice", score, at: now })));
    },
    "batch of one": async (lb: Leaderboard) => {
      for (const score of [10, 20, 30]) await lb.submit("alice", score, { at: now });
    },
    "batch of three": async (lb: Leaderboard) => {
      await Promise.all([10, 20, 30].map((score) => lb.submit("alice", score, { at: now })));
    },
  } as const;
  it.each(
    (["replace", "best", "increment"] as const).flatMap((update) =>
      (Object.keys(routes) as (keyof typeof routes)[]).map((route) => [update, route] as const),
    ),
  )("a sole member's updates keep its period board's expiry (%s, %s)", async (update, route) => {
    const { lb, name } = board({
      periods: route === "two boards" ? ["daily", "weekly"] : ["daily"],
      update,
      graceMs: 2 * DAY,
      ...(route.startsWith("batch") ? { batch: true } : {}),
    });
    await routes[route](lb);
    expect(await lb.rank("alice", { at: now })).toMatchObject({ rank: 1, score: update === "increment" ? 60 : 30 });
    const bucket = periodBucket("daily", now);
    const key = `${prefix}:lb:{${name}}:daily:${bucket.id}`;
    expect(await admin.pexpiretime(key)).toBe(bucket.endMs + 2 * DAY);
    expect(await admin.pexpiretime(`${key}:idx`)).toBe(bucket.endMs + 2 * DAY);
  });

  // A replica whose clock is off by less than clockToleranceMs across a day boundary must still use the board of Redis
  // server time, for submits and reads alike. The offset puts a local midnight about two minutes before (behind:
  // the local clock is still in the previous day) or after (ahead: already in the next day) the server's time.
  it.each([
    ["behind", -1],
    ["ahead", 1],
  ] as const)(
    "a local clock %s by less than the tolerance across a day boundary uses the board of server time",
    async (_what, side) => {
      const [seconds, micros] = await admin.time();
      const server = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
      const boundary = server + side * 120_000;
      let offset = Math.round((((-boundary % DAY) + DAY) % DAY) / 60_000);
      if (offset >= 720) offset -= 1440;
      const { lb } = board({ periods: ["daily", "all"], timeZoneOffsetMinutes: offset, clockToleranceMs: 10 * 60_000 });
      const serverDay = periodBucket("daily", server, offset);
      const local = server + side * 5 * 60_000;
      const localDay = periodBucket("daily", local, offset);
      expect(localDay.id).not.toBe(serverDay.id);
      vi.spyOn(Date, "now").mockReturnValue(local);
      const result = await lb.submit("m", 7, { meta: "M" });
      expect(result).toMatchObject({ bucket: serverDay.id, rank: 1, updated: true });
      await lb.submitMany([{ member: "n", score: 3 }]);
      expect(await lb.top(5)).toEqual([
        { member: "m", score: 7, rank: 1, meta: "M" },
        { member: "n", score: 3, rank: 2, meta: null },
      ]);
      expect(await lb.count()).toBe(2);
      expect(await lb.rank("n")).toMatchObject({ rank: 2, count: 2 });
      expect((await lb.around("n", 1)).map((e) => e.member)).toEqual(["m", "n"]);
      vi.restoreAllMocks();
      expect(await lb.count({ at: serverDay.startMs })).toBe(2);
      expect(await lb.count({ at: localDay.startMs })).toBe(0);
    },
  );

  // ClockSkewError is no clock monitor: far from a boundary a clock off by more than the tolerance names only buckets
  // that hold server time too, so the call succeeds on the board of server time (never a wrong one).
  it("a local clock off by more than the tolerance far from a boundary still uses the board of server time", async () => {
    const [seconds, micros] = await admin.time();
    const server = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    // Local midnight twelve hours from server time; the local clock two hours ahead, the tolerance one minute.
    let offset = Math.round((((-(server + DAY / 2) % DAY) + DAY) % DAY) / 60_000);
    if (offset >= 720) offset -= 1440;
    const { lb } = board({ periods: ["daily"], timeZoneOffsetMinutes: offset, clockToleranceMs: 60_000 });
    const serverDay = periodBucket("daily", server, offset);
    vi.spyOn(Date, "now").mockReturnValue(server + 2 * 3_600_000);
    expect(await lb.submit("m", 1)).toMatchObject({ bucket: serverDay.id, rank: 1 });
    expect(await lb.count()).toBe(1);
    vi.restoreAllMocks();
    expect(await lb.count({ at: serverDay.startMs })).toBe(1);
  });

  it.each([[["daily", "all"] as Period[]], [["daily"] as Period[]]])(
    "uses Redis server time without `at`, and fails with ClockSkewError when the local clock is far off (periods %j)",
    async (periods) => {
      const { lb } = board({ periods });
      const before = Date.now();
      const result = await lb.submit("a", 1);
      const after = Date.now();
      expect([periodBucket("daily", before).id, periodBucket("daily", after).id]).toContain(result.bucket);
      vi.spyOn(Date, "now").mockReturnValue(after + 2 * DAY);
      const err = await lb.submit("b", 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClockSkewError);
      expect(await lb.rank("x").catch((e: unknown) => e)).toBeInstanceOf(ClockSkewError);
      vi.restoreAllMocks();
      expect(await lb.count({ period: periods[periods.length - 1] })).toBe(1);
    },
  );
});
