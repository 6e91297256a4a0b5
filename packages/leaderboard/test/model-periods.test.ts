import { connect, type RedisClient } from "@coordis/core";
import {
  type Entry,
  Leaderboard,
  type LeaderboardOptions,
  type Order,
  periodBucket,
  type UpdatePolicy,
} from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("lbmp");
const DAY = 86_400_000;
let counter = 0;

type Row = { bucket: string; score: number; rank: number; updated: boolean };

/**
 * The reference of a leaderboard with a daily and an all-time board whose boards differ: one map per board, each
 * ordered by score, then by the arrival number of the submission that last changed the member's score there. One
 * submission draws one arrival number, shared by every board it changes (a member's daily and all-time entries
 * reached their scores at the same moment).
 */
class Model {
  readonly boards = new Map<string, Map<string, { score: number; seq: number }>>();
  readonly meta = new Map<string, number>();
  seq = 0;
  constructor(
    readonly order: Order,
    readonly update: UpdatePolicy,
  ) {}

  submit(member: string, score: number, at: number, meta: number | undefined): Row[] {
    let drawn: number | undefined;
    const rows: Row[] = [];
    for (const id of [periodBucket("daily", at).id, "all"]) {
      const board = this.board(id);
      const cur = board.get(member);
      let next = score;
      if (cur !== undefined && this.update === "increment") next = cur.score + score;
      if (cur !== undefined && this.update === "best") {
        const better = this.order === "desc" ? score > cur.score : score < cur.score;
        next = better ? score : cur.score;
      }
      const updated = cur === undefined || next !== cur.score;
      if (updated) {
        drawn ??= ++this.seq;
        board.set(member, { score: next, seq: drawn });
      }
      rows.push({ bucket: id, score: next, rank: this.sorted(id).findIndex((e) => e.member === member) + 1, updated });
    }
    if (meta !== undefined) this.meta.set(member, meta);
    return rows;
  }

  remove(member: string): boolean {
    let found = false;
    for (const board of this.boards.values()) found = board.delete(member) || found;
    this.meta.delete(member);
    return found;
  }

  board(id: string): Map<string, { score: number; seq: number }> {
    let board = this.boards.get(id);
    if (board === undefined) {
      board = new Map();
      this.boards.set(id, board);
    }
    return board;
  }

  sorted(id: string): Entry<number>[] {
    const dir = this.order === "desc" ? -1 : 1;
    return [...this.board(id)]
      .sort(([, a], [, b]) => (a.score === b.score ? a.seq - b.seq : a.score < b.score ? -dir : dir))
      .map(([member, e], i) => ({ member, score: e.score, rank: i + 1, meta: this.meta.get(member) ?? null }));
  }
}

type Item = { member: string; score: number; day: number; meta?: number };
type Cmd = { kind: "submit" | "submitMany" | "burst"; items: Item[] } | { kind: "remove"; member: string };

const member = fc.constantFrom("ann", "bob", "cy", "dee");
const commands = (score: fc.Arbitrary<number>) =>
  fc.array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constantFrom("submit" as const, "submitMany" as const, "burst" as const),
          items: fc.array(
            fc.record(
              { member, score, day: fc.integer({ min: 0, max: 2 }), meta: fc.integer({ min: 0, max: 9 }) },
              { requiredKeys: ["member", "score", "day"] },
            ),
            { minLength: 1, maxLength: 5 },
          ),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), member }) },
    ) as fc.Arbitrary<Cmd>,
    { minLength: 1, maxLength: 20 },
  );

describe("model-based: a daily and an all-time board that differ (submits on three days)", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
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
  it.each(policies)(
    "%s / %s: every result and every board matches the reference, one by one, in submitMany and micro-batched",
    async (update, order) => {
      // Every submit names its day: today, yesterday or the day before (all within the default grace), so a run
      // across midnight still sees the same boards.
      const now = Date.now();
      const score = update === "increment" ? fc.integer({ min: -2, max: 2 }) : fc.constantFrom(-1, 0, 1, 2, 1e300);
      await fc.assert(
        fc.asyncProperty(commands(score), async (cmds) => {
          const name = `mp${++counter}`;
          const options: LeaderboardOptions = { prefix, update, order, periods: ["daily", "all"] };
          const lb = new Leaderboard<number>(redis, name, options);
          const batched = new Leaderboard<number>(redis, name, { ...options, batch: { maxSize: 3 } });
          const model = new Model(order, update);
          const ats = new Map<string, number>();
          for (const cmd of cmds) {
            if (cmd.kind === "remove") {
              expect(await lb.remove(cmd.member)).toBe(model.remove(cmd.member));
              continue;
            }
            const items = cmd.kind === "submit" ? cmd.items.slice(0, 1) : cmd.items;
            const calls = items.map((i) => {
              const at = now - i.day * DAY;
              ats.set(periodBucket("daily", at).id, at);
              return { member: i.member, score: i.score, at, ...(i.meta === undefined ? {} : { meta: i.meta }) };
            });
            const want = calls.map((c) => model.submit(c.member, c.score, c.at, c.meta));
            const opts = (c: (typeof calls)[number]) =>
              c.meta === undefined ? { at: c.at } : { at: c.at, meta: c.meta };
            const got =
              cmd.kind === "submitMany"
                ? await lb.submitMany(calls)
                : cmd.kind === "burst"
                  ? await Promise.all(calls.map((c) => batched.submit(c.member, c.score, opts(c))))
                  : await Promise.all(calls.map((c) => lb.submit(c.member, c.score, opts(c))));
            const rows = got.map((g) =>
              (["daily", "all"] as const).map((p) => {
                const { bucket, score: s, rank, updated } = g.periods[p] as Row;
                return { bucket, score: s, rank, updated };
              }),
            );
            expect(rows).toEqual(want);
          }
          for (const id of model.boards.keys()) {
            const board = id === "all" ? { period: "all" as const } : { period: "daily" as const, at: ats.get(id) };
            expect(await lb.top(100, board)).toEqual(model.sorted(id));
          }
        }),
        { numRuns: 8 },
      );
    },
  );
});
