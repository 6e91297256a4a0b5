import { connect, type RedisClient } from "@coordis/core";
import { type Entry, Leaderboard, type Order, type Period, type UpdatePolicy } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();
let counter = 0;

/** The reference: a map member -> (score, arrival) sorted by score, then by arrival (earliest first). */
class Model {
  private readonly entries = new Map<string, { score: number; seq: number; meta: number | null }>();
  private seq = 0;
  constructor(
    private readonly order: Order,
    private readonly update: UpdatePolicy,
  ) {}

  submit(member: string, score: number, meta?: number): { score: number; rank: number; updated: boolean } {
    const cur = this.entries.get(member);
    let next = score + 0;
    if (cur !== undefined && this.update === "increment") next = cur.score + score;
    if (cur !== undefined && this.update === "best") {
      const better = this.order === "desc" ? score > cur.score : score < cur.score;
      next = better ? score + 0 : cur.score; // Redis answers -0 as 0
    }
    const m = meta ?? cur?.meta ?? null;
    const updated = cur === undefined || next !== cur.score;
    this.entries.set(member, { score: next, seq: updated ? ++this.seq : (cur?.seq ?? 0), meta: m });
    return { score: next, rank: this.rankOf(member) as number, updated };
  }

  remove(member: string): boolean {
    return this.entries.delete(member);
  }

  sorted(): Entry<number>[] {
    const dir = this.order === "desc" ? -1 : 1;
    return [...this.entries]
      .sort(([, a], [, b]) => (a.score === b.score ? a.seq - b.seq : a.score < b.score ? -dir : dir))
      .map(([member, e], i) => ({ member, score: e.score, rank: i + 1, meta: e.meta }));
  }

  rankOf(member: string): number | undefined {
    const i = this.sorted().findIndex((e) => e.member === member);
    return i === -1 ? undefined : i + 1;
  }
}

const members = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"];
const member = fc.constantFrom(...members);
const bigScore = fc.oneof(
  fc.constantFrom(0, 1, 2, -1, 2 ** 50, 2 ** 50 + 2, 1e300, -1e300, Number.MAX_VALUE, -Number.MAX_VALUE, 0.1, 5e-324),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const smallScore = fc.integer({ min: -3, max: 3 });

type Cmd =
  | { kind: "submit"; items: Array<{ member: string; score: number; meta?: number }> }
  | { kind: "remove"; member: string }
  | { kind: "rank"; member: string }
  | { kind: "page"; page: number; size: number }
  | { kind: "around"; member: string; radius: number }
  | { kind: "count" };

const commands = (score: fc.Arbitrary<number>) =>
  fc.array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("submit" as const),
          items: fc.array(
            fc.record({ member, score, meta: fc.option(fc.integer({ min: 0, max: 9 }), { nil: undefined }) }),
            { minLength: 1, maxLength: 4 },
          ),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), member }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant("rank" as const), member }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant("page" as const),
          page: fc.integer({ min: 1, max: 4 }),
          size: fc.integer({ min: 1, max: 5 }),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant("around" as const),
          member,
          radius: fc.integer({ min: 0, max: 3 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("count" as const) }) },
    ) as fc.Arbitrary<Cmd>,
    { minLength: 1, maxLength: 25 },
  );

describe.each([
  ["standalone", () => inject("coordisRedisUrl"), 25],
  ["cluster", () => inject("coordisClusterUrl"), 8],
])("model-based on %s", (_label, url, numRuns) => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(url());
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  const policies: Array<[UpdatePolicy, Order]> = [
    ["best", "desc"],
    ["best", "asc"],
    ["replace", "desc"],
    ["replace", "asc"],
    ["increment", "desc"],
    ["increment", "asc"],
  ];

  // Two boards per submit take the script's general path; one board (all-time, or a period bucket) its single-item
  // path for one-item submits and the general one for the others.
  const layouts: Array<[string, Period[], number]> = [
    ["every board", ["all", "daily"], numRuns],
    ["the all-time board alone", ["all"], Math.ceil(numRuns / 2)],
    ["a daily board alone", ["daily"], Math.ceil(numRuns / 2)],
  ];
  const cases = layouts.flatMap(([label, periods, runs]) =>
    policies.map(([update, order]) => [update, order, label, periods, runs] as const),
  );

  it.each(cases)("%s / %s matches the reference model on %s", async (update, order, _label, periods, runs) => {
    // Every submit carries the same `at`, so the daily board sees exactly what the all-time board sees.
    const at = Date.now();
    await fc.assert(
      fc.asyncProperty(commands(update === "increment" ? smallScore : bigScore), async (cmds) => {
        const lb = new Leaderboard<number>(redis, `m${++counter}`, { prefix, update, order, periods });
        const model = new Model(order, update);
        const boards = periods.map((period) => (period === "all" ? { period } : { period, at }));
        const second = periods[1];
        for (const cmd of cmds) {
          switch (cmd.kind) {
            case "submit": {
              const got = await lb.submitMany(cmd.items.map((i) => ({ ...i, at })));
              const want = cmd.items.map((i) => model.submit(i.member, i.score, i.meta));
              // Ranks in a batch are taken right after each item, like the model's.
              expect(got.map((g) => ({ score: g.score, rank: g.rank, updated: g.updated }))).toEqual(want);
              if (second !== undefined) {
                expect(got.map((g) => g.periods[second]?.rank)).toEqual(want.map((w) => w.rank));
              }
              break;
            }
            case "remove":
              expect(await lb.remove(cmd.member)).toBe(model.remove(cmd.member));
              break;
            case "rank":
              for (const b of boards) {
                const got = await lb.rank(cmd.member, b);
                const e = model.sorted().find((x) => x.member === cmd.member);
                expect(got).toEqual(e === undefined ? null : { ...e, count: model.sorted().length });
              }
              break;
            case "page":
              for (const b of boards) {
                const want = model.sorted().slice((cmd.page - 1) * cmd.size, cmd.page * cmd.size);
                expect(await lb.page(cmd.page, cmd.size, b)).toEqual(want);
              }
              break;
            case "around":
              for (const b of boards) {
                const all = model.sorted();
                const i = all.findIndex((x) => x.member === cmd.member);
                const want = i === -1 ? [] : all.slice(Math.max(0, i - cmd.radius), i + cmd.radius + 1);
                expect(await lb.around(cmd.member, cmd.radius, b)).toEqual(want);
              }
              break;
            case "count":
              for (const b of boards) expect(await lb.count(b)).toBe(model.sorted().length);
              break;
          }
        }
        for (const b of boards) expect(await lb.top(100, b)).toEqual(model.sorted());
      }),
      { numRuns: runs },
    );
  });
});
