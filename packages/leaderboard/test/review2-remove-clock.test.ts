import { connect, type RedisClient } from "@coordis/core";
import { ClockSkewError, Leaderboard, periodBucket } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from "vitest";

const DAY = 86_400_000;
const MIN = 60_000;

/** The time-zone offset (whole minutes, within ±12 h) that puts a local midnight at about `instant` (±30 s). */
function offsetWithMidnightAt(instant: number): number {
  let offset = Math.round((((-instant % DAY) + DAY) % DAY) / MIN);
  if (offset >= 720) offset -= 1440;
  return offset;
}

/**
 * remove() names the boards to clean by the local clock (every bucket that may still exist by its reckoning). A clock
 * off by more than the tolerance near a period boundary named a set of boards that missed one still alive by Redis
 * server time: the member stayed on it (its metadata gone) and remove() resolved as if it had removed it everywhere.
 * Submits and queries answer such a clock with ClockSkewError and change nothing; so must remove().
 */
describe.each([
  ["standalone", () => inject("coordisRedisUrl"), () => inject("coordisAdminRedisUrl")],
  ["cluster", () => inject("coordisClusterUrl"), () => inject("coordisAdminClusterUrl")],
])("remove() with a local clock off by more than the tolerance, on %s", (_label, url, adminUrl) => {
  const prefix = testPrefix("lb-rmclock");
  let counter = 0;
  let redis: RedisClient;
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
  const serverTime = async () => {
    const [seconds, micros] = await admin.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  };

  /** Where the member is: per board read by server time (or `at`), its rank or null; and its metadata. */
  async function where(lb: Leaderboard<string>, ats: readonly number[]) {
    const daily = await Promise.all(ats.map(async (at) => (await lb.rank("m", { period: "daily", at }))?.rank ?? null));
    const all = await lb.rank("m", { period: "all" });
    return { daily, all: all?.rank ?? null, meta: all?.meta ?? null };
  }

  it("behind: the board of the day the server is already in is not skipped", async () => {
    const server = await serverTime();
    // A local midnight two minutes before server time: the server is in a new day, a clock five minutes behind in
    // the day before, and the tolerance is one minute.
    const offset = offsetWithMidnightAt(server - 2 * MIN);
    const lb = new Leaderboard<string>(redis, `behind-${++counter}`, {
      prefix,
      periods: ["daily", "all"],
      timeZoneOffsetMinutes: offset,
      clockToleranceMs: MIN,
    });
    const today = periodBucket("daily", server, offset);
    expect(today.startMs).toBeLessThan(server - MIN);
    expect(await lb.submit("m", 10, { meta: "M", at: today.startMs })).toMatchObject({ bucket: today.id, rank: 1 });
    await lb.submit("m", 5, { at: today.startMs - 1 }); // yesterday's board too
    await lb.submit("other", 1, { at: today.startMs });
    const before = await where(lb, [today.startMs, today.startMs - 1]);
    expect(before).toEqual({ daily: [1, 1], all: 1, meta: "M" });

    vi.spyOn(Date, "now").mockReturnValue(server - 5 * MIN);
    const outcome = await lb.remove("m").catch((err: unknown) => err);
    vi.restoreAllMocks();
    const after = await where(lb, [today.startMs, today.startMs - 1]);
    expect({ outcome, after }).toEqual({ outcome: expect.any(ClockSkewError), after: before });
    // With the clock right, it goes from every board.
    expect(await lb.remove("m")).toBe(true);
    expect(await where(lb, [today.startMs, today.startMs - 1])).toEqual({ daily: [null, null], all: null, meta: null });
  });

  it("ahead: a past board that is still alive by server time (within its grace) is not skipped", async () => {
    const server = await serverTime();
    const graceMs = 3 * 3_600_000;
    // Yesterday's board closes two minutes after server time; a clock five minutes ahead thinks it gone.
    const offset = offsetWithMidnightAt(server + 2 * MIN - graceMs);
    const lb = new Leaderboard<string>(redis, `ahead-${++counter}`, {
      prefix,
      periods: ["daily", "all"],
      timeZoneOffsetMinutes: offset,
      clockToleranceMs: MIN,
      graceMs,
    });
    const yesterday = periodBucket("daily", server - graceMs, offset);
    expect(yesterday.endMs + graceMs).toBeGreaterThan(server + MIN);
    await lb.submit("m", 10, { meta: "M", at: yesterday.endMs - 1 });
    await lb.submit("m", 3); // today's board, by server time
    const ats = [yesterday.endMs - 1, yesterday.endMs];
    const before = await where(lb, ats);
    expect(before).toEqual({ daily: [1, 1], all: 1, meta: "M" });

    vi.spyOn(Date, "now").mockReturnValue(server + 5 * MIN);
    const outcome = await lb.remove("m").catch((err: unknown) => err);
    vi.restoreAllMocks();
    const after = await where(lb, ats);
    expect({ outcome, after }).toEqual({ outcome: expect.any(ClockSkewError), after: before });
    expect(await lb.remove("m")).toBe(true);
    expect(await where(lb, ats)).toEqual({ daily: [null, null], all: null, meta: null });
  });

  it("setMeta: a member only on the board the clock misses is not reported unknown", async () => {
    const server = await serverTime();
    const offset = offsetWithMidnightAt(server - 2 * MIN);
    const lb = new Leaderboard<string>(redis, `meta-${++counter}`, {
      prefix,
      periods: ["daily"],
      timeZoneOffsetMinutes: offset,
      clockToleranceMs: MIN,
    });
    const today = periodBucket("daily", server, offset);
    await lb.submit("n", 1, { at: today.startMs }); // no metadata
    vi.spyOn(Date, "now").mockReturnValue(server - 5 * MIN);
    const outcome = await lb.setMeta("n", "N").catch((err: unknown) => err);
    vi.restoreAllMocks();
    expect(outcome).toBeInstanceOf(ClockSkewError);
    expect(await lb.rank("n", { at: today.startMs })).toMatchObject({ rank: 1, meta: null });
    expect(await lb.setMeta("n", "N")).toBe(true);
    expect(await lb.rank("n", { at: today.startMs })).toMatchObject({ rank: 1, meta: "N" });
    expect(await lb.setMeta("nobody", "X")).toBe(false);
  });

  it("a clock off by more than the tolerance far from any boundary or expiry still removes from every board", async () => {
    const server = await serverTime();
    // Local midnight twelve hours away; the clock two hours behind.
    const offset = offsetWithMidnightAt(server + DAY / 2);
    const lb = new Leaderboard<string>(redis, `far-${++counter}`, {
      prefix,
      periods: ["daily", "all"],
      timeZoneOffsetMinutes: offset,
      clockToleranceMs: MIN,
    });
    await lb.submit("m", 1, { meta: "M" });
    vi.spyOn(Date, "now").mockReturnValue(server - 2 * 3_600_000);
    expect(await lb.remove("m")).toBe(true);
    vi.restoreAllMocks();
    expect(await where(lb, [server])).toEqual({ daily: [null], all: null, meta: null });
  });
});
