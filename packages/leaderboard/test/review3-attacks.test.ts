import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import {
  Leaderboard,
  type LeaderboardOptions,
  PeriodClosedError,
  periodBucket,
  ScoreOverflowError,
} from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("lb-r3");
let counter = 0;
const DAY = 86_400_000;

/**
 * Adversarial checks: increments and equal scores racing from several connections (some micro-batched), all-or-none
 * batches that span a day boundary or fail on a late item, and member ids and metadata at the edges of what is allowed.
 */
describe("leaderboard under racing clients, boundary batches and odd input (shared server)", () => {
  const clients: RedisClient[] = [];
  let admin: RedisClient;
  beforeAll(async () => {
    for (let i = 0; i < 6; i++) clients.push(connect(inject("coordisRedisUrl")));
    admin = connect(inject("coordisAdminRedisUrl"));
    await Promise.all(clients.map((c) => c.ping()));
  });
  afterAll(() => {
    for (const c of clients) c.disconnect();
    admin.disconnect();
  });
  /** One Leaderboard per connection on the same board; every other one micro-batched. */
  const boards = <M = unknown>(name: string, options: LeaderboardOptions) =>
    clients.map((c, i) => new Leaderboard<M>(c, name, { prefix, ...options, ...(i % 2 === 1 ? { batch: true } : {}) }));

  it("increments racing from six connections end at the exact totals on the all-time and the daily board", async () => {
    const name = `inc-${++counter}`;
    const lbs = boards(name, { update: "increment", periods: ["daily", "all"] });
    const members = Array.from({ length: 12 }, (_, i) => `m${i}`);
    const want = new Map<string, number>();
    const calls: Promise<unknown>[] = [];
    for (let round = 0; round < 40; round++) {
      for (const [i, lb] of lbs.entries()) {
        const member = members[(round * 7 + i * 5) % members.length] as string;
        const amount = ((round * 31 + i * 17) % 23) - 11; // -11..11, zero included
        want.set(member, (want.get(member) ?? 0) + amount);
        calls.push(lb.submit(member, amount));
      }
      if (round % 10 === 9) {
        const items = members.map((member, k) => ({ member, score: k - 6 }));
        for (const it of items) want.set(it.member, (want.get(it.member) ?? 0) + it.score);
        calls.push((lbs[round % lbs.length] as Leaderboard).submitMany(items));
      }
    }
    await Promise.all(calls);
    const reader = lbs[0] as Leaderboard;
    for (const period of ["daily", "all"] as const) {
      const rows = await reader.top(100, { period });
      expect(new Map(rows.map((r) => [r.member, r.score]))).toEqual(want);
      expect(rows.map((r) => r.rank)).toEqual(rows.map((_, i) => i + 1));
      for (let i = 1; i < rows.length; i++) {
        expect(rows[i]?.score).toBeLessThanOrEqual(rows[i - 1]?.score as number);
      }
    }
    // Every board's index names exactly its members.
    const keys = await admin.keys(`${prefix}:lb:{${name}}:*`);
    for (const key of keys.filter((k) => !k.endsWith(":idx") && !k.endsWith(":meta") && !k.endsWith(":seq"))) {
      expect(await admin.zcard(key)).toBe(await admin.hlen(`${key}:idx`));
    }
  });

  it.each(["desc", "asc"] as const)(
    "%s: equal scores racing from six connections rank by arrival, as each submit saw it",
    async (order) => {
      const name = `ties-${order}-${++counter}`;
      const lbs = boards(name, { order, update: "best", periods: ["weekly", "all"] });
      const calls: Promise<{ member: string; rank: number; allRank: number }>[] = [];
      for (let round = 0; round < 25; round++) {
        for (const [i, lb] of lbs.entries()) {
          const member = `c${i}-r${round}`;
          calls.push(
            lb.submit(member, 7).then((r) => ({ member, rank: r.rank, allRank: r.periods.all?.rank as number })),
          );
        }
      }
      const results = await Promise.all(calls);
      // Each submit joined the end of the equal-score run: the rank it got is its arrival position.
      const byArrival = [...results].sort((a, b) => a.rank - b.rank);
      expect(byArrival.map((r) => r.rank)).toEqual(results.map((_, i) => i + 1));
      expect(results.every((r) => r.allRank === r.rank)).toBe(true);
      const reader = lbs[0] as Leaderboard;
      for (const period of ["weekly", "all"] as const) {
        expect((await reader.top(1000, { period })).map((e) => e.member)).toEqual(byArrival.map((r) => r.member));
      }
      // Per connection, its own calls keep their call order.
      for (let i = 0; i < lbs.length; i++) {
        const mine = byArrival.filter((r) => r.member.startsWith(`c${i}-`)).map((r) => Number(r.member.split("-r")[1]));
        expect(mine).toEqual([...mine].sort((a, b) => a - b));
      }
    },
  );

  it("submitMany across a day boundary: each item on its own day's board, increments of one member summed per board", async () => {
    const lb = new Leaderboard<{ v: number }>(clients[0] as RedisClient, `span-${++counter}`, {
      prefix,
      update: "increment",
      periods: ["daily", "all"],
    });
    const today = periodBucket("daily", Date.now());
    const lastOfYesterday = today.startMs - 1;
    const firstOfToday = today.startMs;
    const res = await lb.submitMany([
      { member: "x", score: 5, at: lastOfYesterday, meta: { v: 1 } },
      { member: "x", score: 3, at: firstOfToday },
      { member: "x", score: 4, at: lastOfYesterday },
      { member: "y", score: 1, at: firstOfToday, meta: { v: 2 } },
      { member: "x", score: -1, at: firstOfToday, meta: { v: 3 } },
    ]);
    expect(res.map((r) => [r.bucket, r.score, r.periods.all?.score])).toEqual([
      [periodBucket("daily", lastOfYesterday).id, 5, 5],
      [today.id, 3, 8],
      [periodBucket("daily", lastOfYesterday).id, 9, 12],
      [today.id, 1, 1],
      [today.id, 2, 11],
    ]);
    expect(await lb.rank("x", { period: "daily", at: lastOfYesterday })).toMatchObject({ score: 9, meta: { v: 3 } });
    expect(await lb.rank("x", { period: "daily", at: firstOfToday })).toMatchObject({ score: 2, rank: 1 });
    expect(await lb.rank("x", { period: "all" })).toMatchObject({ score: 11, rank: 1 });
  });

  it("submitMany is all or none when a late item overflows only with the sum of earlier items, or names a closed day", async () => {
    const lb = new Leaderboard<{ v: number }>(clients[0] as RedisClient, `aon-${++counter}`, {
      prefix,
      update: "increment",
      periods: ["daily", "all"],
      graceMs: DAY,
    });
    await lb.submit("x", 1, { meta: { v: 0 } });
    const max = Number.MAX_SAFE_INTEGER;
    await expect(
      lb.submitMany([
        { member: "y", score: 10, meta: { v: 9 } },
        { member: "x", score: max - 10 }, // 1 + max - 10: fine alone
        { member: "x", score: 9 }, // ... + 9 = max: still fine
        { member: "x", score: 1 }, // max + 1: overflow
      ]),
    ).rejects.toThrow(ScoreOverflowError);
    await expect(
      lb.submitMany([
        { member: "y", score: 10, meta: { v: 9 } },
        { member: "x", score: 2, meta: { v: 9 } },
        { member: "x", score: 2, at: Date.now() - 3 * DAY },
      ]),
    ).rejects.toThrow(PeriodClosedError);
    expect(await lb.rank("x", { period: "all" })).toMatchObject({ score: 1, meta: { v: 0 } });
    expect(await lb.rank("x")).toMatchObject({ score: 1, meta: { v: 0 } });
    expect(await lb.rank("y", { period: "all" })).toBeNull();
    expect(await lb.count({ period: "all" })).toBe(1);
    // Exactly at the bound is accepted, as one batch.
    const ok = await lb.submitMany([
      { member: "x", score: max - 10 },
      { member: "x", score: 9 },
    ]);
    expect(ok.map((r) => r.score)).toEqual([max - 9, max]);
  });

  it("member ids with braces, colons, digits like an arrival prefix, NUL, emoji and 512 bytes come back exactly", async () => {
    const lb = new Leaderboard<{ s: string }>(clients[0] as RedisClient, `odd-${++counter}`, {
      prefix,
      periods: ["daily", "all"],
      metaMaxBytes: 64,
    });
    const odd = [
      "{braces}",
      "}{",
      "a:b:c",
      ":",
      "0000000000000001:evil",
      "9007199254740991",
      "nul\0inside",
      "\0",
      " ",
      "🙂".repeat(128), // 512 bytes
      "é".repeat(256), // 512 bytes
      "x".repeat(512),
    ];
    for (const [i, member] of odd.entries()) await lb.submit(member, i % 3, { meta: { s: member.slice(0, 4) } });
    for (const period of ["daily", "all"] as const) {
      const top = await lb.top(100, { period });
      expect(new Set(top.map((e) => e.member))).toEqual(new Set(odd));
      for (const e of top) expect(e.meta).toEqual({ s: e.member.slice(0, 4) });
      const paged = [
        ...(await lb.page(1, 5, { period })),
        ...(await lb.page(2, 5, { period })),
        ...(await lb.page(3, 5, { period })),
      ];
      expect(paged).toEqual(top);
    }
    for (const member of odd) {
      const r = await lb.rank(member);
      expect(r?.member).toBe(member);
      const around = await lb.around(member, 1);
      expect(around.some((e) => e.member === member)).toBe(true);
    }
    expect(await lb.remove("0000000000000001:evil")).toBe(true);
    expect(await lb.rank("0000000000000001:evil")).toBeNull();
    expect(await lb.rank("evil")).toBeNull();
    expect(await lb.count()).toBe(odd.length - 1);
    // Past the bounds: refused before anything is sent.
    await expect(lb.submit(`${"🙂".repeat(128)}x`, 1)).rejects.toThrow(InvalidArgumentError);
    await expect(lb.submit("", 1)).rejects.toThrow(InvalidArgumentError);
    await expect(lb.submit("\ud800", 1)).rejects.toThrow(InvalidArgumentError);
    // Metadata at exactly metaMaxBytes of multi-byte JSON is kept; one byte more is refused.
    const exact = { s: "é".repeat(27) }; // {"s":"…"} = 8 + 54 bytes = 62
    const pad = { s: `${"é".repeat(27)}ab` }; // 64
    await lb.submit("meta", 1, { meta: pad });
    expect((await lb.rank("meta"))?.meta).toEqual(pad);
    await expect(lb.submit("meta", 2, { meta: { s: `${"é".repeat(27)}abc` } })).rejects.toThrow(InvalidArgumentError);
    await expect(lb.submit("meta", 2, { meta: { s: `${"é".repeat(28)}a` } })).rejects.toThrow(InvalidArgumentError);
    expect(await lb.setMeta("meta", exact)).toBe(true);
    expect(await lb.rank("meta", { period: "all" })).toMatchObject({ score: 1, meta: exact });
  });
});
