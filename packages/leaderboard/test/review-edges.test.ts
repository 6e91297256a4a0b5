import { Leaderboard, type LeaderboardOptions } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("lb-edges");
let counter = 0;

/**
 * Edge cases of the leaderboard scripts through the public API: equal scores reached again by later submits under
 * each update policy, around() at both ends of a board, negative zero, a period board emptied by remove() and
 * written again, and submits racing removes of the same members.
 */
describe("leaderboard edges", () => {
  const clients = sharedClients();
  const board = <M = unknown>(options: LeaderboardOptions = {}) =>
    new Leaderboard<M>(clients.redis, `edges-${++counter}`, { prefix, ...options });
  const members = async (lb: Leaderboard, n = 50) => (await lb.top(n)).map((e) => e.member);

  describe.each(["desc", "asc"] as const)("%s", (order) => {
    it("replace: the same score again keeps its place among equals; leaving it and coming back goes behind", async () => {
      const lb = board({ order, update: "replace" });
      await lb.submit("a", 10);
      await lb.submit("b", 10);
      expect(await lb.submit("a", 10)).toMatchObject({ score: 10, rank: 1, updated: false });
      expect(await members(lb)).toEqual(["a", "b"]);
      await lb.submit("a", 9);
      expect(await lb.submit("a", 10)).toMatchObject({ score: 10, rank: 2, updated: true });
      expect(await members(lb)).toEqual(["b", "a"]);
    });

    it("increment: adding 0 changes nothing; coming back to an equal sum goes behind the member already there", async () => {
      const lb = board({ order, update: "increment" });
      await lb.submit("a", 4);
      await lb.submit("a", 6);
      await lb.submit("b", 10);
      expect(await lb.submit("a", 0)).toMatchObject({ score: 10, rank: 1, updated: false });
      expect(await members(lb)).toEqual(["a", "b"]);
      await lb.submit("a", 1);
      expect(await lb.submit("a", -1)).toMatchObject({ score: 10, rank: 2, updated: true });
      expect(await members(lb)).toEqual(["b", "a"]);
      // Fractions that do not add up exactly in binary still tie by arrival with the same double.
      const f = board({ order, update: "increment" });
      await f.submit("x", 0.1);
      await f.submit("x", 0.2);
      await f.submit("y", 0.1 + 0.2);
      expect((await f.top(5)).map((e) => [e.member, e.score, e.rank])).toEqual([
        ["x", 0.1 + 0.2, 1],
        ["y", 0.1 + 0.2, 2],
      ]);
    });

    it("best: an equal score is no improvement and keeps the earlier arrival; -0 ties with 0", async () => {
      const lb = board({ order });
      await lb.submit("a", 0);
      await lb.submit("b", -0);
      expect(await lb.submit("a", -0)).toMatchObject({ score: 0, rank: 1, updated: false });
      const top = await lb.top(5);
      expect(top.map((e) => [e.member, e.rank])).toEqual([
        ["a", 1],
        ["b", 2],
      ]);
      for (const e of top) expect(Object.is(e.score, -0), `${e.member} reads back as -0`).toBe(false);
    });

    it("around() at the top, at the bottom, with radius 0, past both ends, and on a board of one", async () => {
      const lb = board({ order });
      const one = board({ order });
      await one.submit("solo", 1);
      expect((await one.around("solo", 500)).map((e) => [e.member, e.rank])).toEqual([["solo", 1]]);
      expect(await board({ order }).around("nobody", 2)).toEqual([]);

      await lb.submitMany(Array.from({ length: 6 }, (_, i) => ({ member: `m${i}`, score: i })));
      const ranked = await members(lb);
      const first = ranked[0] as string;
      const last = ranked[5] as string;
      expect((await lb.around(first, 2)).map((e) => e.member)).toEqual(ranked.slice(0, 3));
      expect((await lb.around(last, 2)).map((e) => e.member)).toEqual(ranked.slice(3));
      expect((await lb.around(ranked[2] as string, 0)).map((e) => [e.member, e.rank])).toEqual([[ranked[2], 3]]);
      const wide = await lb.around(ranked[3] as string, 500);
      expect(wide.map((e) => e.member)).toEqual(ranked);
      expect(wide.map((e) => e.rank)).toEqual([1, 2, 3, 4, 5, 6]);
    });
  });

  it("a period board emptied by remove() and written again keeps its expiry", async () => {
    const lb = board({ periods: ["daily"] });
    const at = Date.now();
    const { bucket } = await lb.submit("a", 1, { at });
    const zset = `${prefix}:lb:{${lb.name}}:daily:${bucket}`;
    expect(await clients.admin.pttl(zset)).toBeGreaterThan(0);
    expect(await lb.remove("a")).toBe(true);
    expect(await clients.admin.exists(zset, `${zset}:idx`)).toBe(0);
    expect(await lb.submit("b", 2, { at })).toMatchObject({ bucket, rank: 1 });
    expect(await clients.admin.pttl(zset)).toBeGreaterThan(0);
    expect(await clients.admin.pttl(`${zset}:idx`)).toBeGreaterThan(0);
  });

  it("submits racing removes of the same members leave every board and its index in agreement", async () => {
    const lb = board({ periods: ["all", "daily"] });
    const names = ["p", "q", "r", "s"];
    const calls: Promise<unknown>[] = [];
    for (let round = 0; round < 25; round++) {
      for (const [i, m] of names.entries()) {
        calls.push(lb.submit(m, (round * 7 + i) % 5));
        if ((round + i) % 3 === 0) calls.push(lb.remove(m));
      }
    }
    await Promise.all(calls);
    for (const period of ["all", "daily"] as const) {
      const top = await lb.top(50, { period });
      expect(await lb.count({ period })).toBe(top.length);
      for (const e of top) expect(await lb.rank(e.member, { period })).toMatchObject({ rank: e.rank, score: e.score });
      for (const m of names.filter((n) => !top.some((e) => e.member === n))) {
        expect(await lb.rank(m, { period })).toBeNull();
        expect(await lb.around(m, 1, { period })).toEqual([]);
      }
    }
    // Removed, then back with a score another member holds: it arrived last, so it ranks behind every such member.
    await lb.submit("t", 3);
    await lb.remove("q");
    await lb.submit("q", 3);
    for (const period of ["all", "daily"] as const) {
      const threes = (await lb.top(50, { period })).filter((e) => e.score === 3).map((e) => e.member);
      expect(threes).toContain("t");
      expect(threes.at(-1)).toBe("q");
    }
  });
});
