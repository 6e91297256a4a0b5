import { connect, InvalidArgumentError, type RedisClient } from "@coordis/core";
import {
  Leaderboard,
  type LeaderboardOptions,
  leaderboardScripts,
  type Period,
  PeriodClosedError,
  ScoreOverflowError,
  type SubmitResult,
  type UpdatePolicy,
} from "@coordis/leaderboard";
import { countCommands, type RedisServer, recordObserver, startRedis, testPrefix } from "@coordis/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("lbb");

type Call = { member: string; score: number; meta?: { n: number } };

/** Runs the same bursts batched (each burst concurrently) and unbatched (one call at a time); returns both. */
async function both(redis: RedisClient, name: string, options: LeaderboardOptions, bursts: Call[][]) {
  const batched = new Leaderboard<{ n: number }>(redis, name, { ...options, prefix: `${prefix}-b`, batch: true });
  const plain = new Leaderboard<{ n: number }>(redis, name, { ...options, prefix: `${prefix}-u` });
  const got: SubmitResult[][] = [];
  const want: SubmitResult[][] = [];
  for (const burst of bursts) {
    got.push(await Promise.all(burst.map((c) => batched.submit(c.member, c.score, c.meta && { meta: c.meta }))));
    const w: SubmitResult[] = [];
    for (const c of burst) w.push(await plain.submit(c.member, c.score, c.meta && { meta: c.meta }));
    want.push(w);
  }
  return { got, want, batched, plain };
}

describe("micro-batched submit on the shared server", () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = connect(inject("coordisRedisUrl"));
    await redis.ping();
  });
  afterAll(() => {
    redis.disconnect();
  });

  it("property: concurrent batched bursts give the same results and boards as the calls one by one", async () => {
    let run = 0;
    const call = fc.record({
      member: fc.constantFrom("a", "b", "c", "d"),
      score: fc.integer({ min: -5, max: 5 }),
      meta: fc.option(fc.record({ n: fc.integer({ min: 0, max: 9 }) }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<UpdatePolicy>("best", "replace", "increment"),
        fc.constantFrom<"asc" | "desc">("asc", "desc"),
        fc.array(fc.array(call, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }),
        async (update, order, bursts) => {
          run++;
          const name = `prop-${run}`;
          const { got, want, batched, plain } = await both(
            redis,
            name,
            { update, order, periods: ["all", "daily"] },
            bursts,
          );
          expect(got).toEqual(want);
          expect(await batched.top(10)).toEqual(await plain.top(10));
          expect(await batched.top(10, { period: "daily" })).toEqual(await plain.top(10, { period: "daily" }));
        },
      ),
      { numRuns: 20 },
    );
  });

  // Every path of the batch script (one board, one board per period, the general one when items fall on several
  // days) against the single submit's paths, with late, closed and overflowing calls among them: the same results,
  // the same errors (each on its own caller) and the same boards.
  it("property: batched bursts with `at` on several days, closed periods and overflows match the calls one by one", async () => {
    let run = 0;
    const now = Date.now();
    const DAY = 86_400_000;
    const when = [undefined, now, now - DAY, now - 3 * DAY] as const;
    const call = fc.record({
      member: fc.constantFrom("a", "b", "c"),
      score: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constant(Number.MAX_SAFE_INTEGER)),
      meta: fc.option(fc.record({ n: fc.integer({ min: 0, max: 9 }) }), { nil: undefined }),
      at: fc.constantFrom(...when),
    });
    type Timed = Call & { at: number | undefined };
    const settle = async (p: Promise<SubmitResult>) =>
      p.then(
        (value) => ({ ok: value }),
        (err: unknown) => ({ error: (err as Error).constructor.name }),
      );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<UpdatePolicy>("best", "replace", "increment"),
        fc.constantFrom<"asc" | "desc">("asc", "desc"),
        fc.constantFrom<Period[]>(["all"], ["daily"], ["all", "daily"], ["daily", "weekly"]),
        fc.array(fc.array(call, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 3 }),
        async (update, order, periods, bursts: Timed[][]) => {
          run++;
          const options = { update, order, periods, graceMs: 2 * DAY };
          const batched = new Leaderboard(redis, `at-${run}`, { ...options, prefix: `${prefix}-ab`, batch: true });
          const plain = new Leaderboard(redis, `at-${run}`, { ...options, prefix: `${prefix}-au` });
          const opts = (c: Timed) => ({ ...(c.meta && { meta: c.meta }), ...(c.at !== undefined && { at: c.at }) });
          for (const burst of bursts) {
            const got = await Promise.all(burst.map((c) => settle(batched.submit(c.member, c.score, opts(c)))));
            const want = [];
            for (const c of burst) want.push(await settle(plain.submit(c.member, c.score, opts(c))));
            expect(got).toEqual(want);
          }
          for (const period of periods) {
            for (const at of [now, now - DAY]) {
              expect(await batched.top(10, { period, at })).toEqual(await plain.top(10, { period, at }));
            }
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("an increment overflow fails only its own caller; the calls before and after it apply", async () => {
    const lb = new Leaderboard(redis, "overflow", { prefix, update: "increment", batch: true });
    const max = Number.MAX_SAFE_INTEGER;
    const settled = await Promise.allSettled([
      lb.submit("a", 1),
      lb.submit("big", max),
      lb.submit("big", 1),
      lb.submit("a", 1),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    expect((settled[2] as PromiseRejectedResult).reason).toBeInstanceOf(ScoreOverflowError);
    expect((settled[3] as PromiseFulfilledResult<SubmitResult>).value).toMatchObject({ score: 2, rank: 2 });
    expect((await lb.rank("big"))?.score).toBe(max);
  });

  it("a submit to a closed period fails only its own caller", async () => {
    const lb = new Leaderboard(redis, "closed", { prefix, periods: ["daily"], graceMs: 60_000, batch: true });
    const settled = await Promise.allSettled([
      lb.submit("x", 3),
      lb.submit("y", 4, { at: Date.now() - 3 * 86_400_000 }),
      lb.submit("z", 5),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(PeriodClosedError);
    expect((await lb.top(10)).map((e) => e.member)).toEqual(["z", "x"]);
  });

  it("a Redis error in a batch on one board rejects each of its calls; the board works again once the key is mended", async () => {
    const lb = new Leaderboard<{ n: number }>(redis, "clobbered", { prefix, batch: true });
    await lb.submit("seed", 1);
    // The board's index, clobbered by hand: every item's HGET fails with WRONGTYPE.
    const admin = connect(inject("coordisAdminRedisUrl"));
    const [index, ...others] = await admin.keys(`${prefix}:lb:{clobbered}:*:idx`);
    expect([others, await admin.type(index as string)]).toEqual([[], "hash"]);
    await admin.set(index as string, "not a hash");
    const settled = await Promise.allSettled([lb.submit("x", 3), lb.submit("y", 4), lb.submit("z", 5)]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected", "rejected"]);
    for (const s of settled) expect(String((s as PromiseRejectedResult).reason)).toContain("WRONGTYPE");
    await admin.del(index as string, (index as string).replace(/:idx$/, ""));
    admin.disconnect();
    const again = await Promise.all([lb.submit("x", 3), lb.submit("y", 4, { meta: { n: 4 } }), lb.submit("z", 5)]);
    expect(again.map((r) => [r.score, r.rank, r.updated])).toEqual([
      [3, 1, true],
      [4, 1, true],
      [5, 1, true],
    ]);
    expect((await lb.top(3)).map((e) => [e.member, e.meta])).toEqual([
      ["z", null],
      ["y", { n: 4 }],
      ["x", null],
    ]);
  });

  it("one board per period (daily + all): a submit whose `at` lies too far ahead fails only its own caller", async () => {
    const lb = new Leaderboard(redis, "two-periods", {
      prefix,
      periods: ["daily", "all"],
      clockToleranceMs: 1_000,
      batch: true,
    });
    const now = Date.now();
    const settled = await Promise.allSettled([
      lb.submit("x", 3, { at: now }),
      lb.submit("y", 4, { at: now + 60_000 }),
      lb.submit("z", 5, { at: now }),
      lb.submit("x", 2, { at: now }),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
    expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(PeriodClosedError);
    const results = settled.map((s) => (s.status === "fulfilled" ? s.value : null));
    const view = (r: SubmitResult | null) =>
      r && [r.periods.daily?.score, r.periods.daily?.rank, r.periods.all?.rank, r.updated];
    expect(results.map(view)).toEqual([[3, 1, 1, true], null, [5, 1, 1, true], [3, 2, 2, false]]);
    for (const period of ["daily", "all"] as const) {
      expect((await lb.top(10, { period, at: now })).map((e) => [e.member, e.score])).toEqual([
        ["z", 5],
        ["x", 3],
      ]);
    }
  });

  it.each([true, false])(
    "daily + all, increment (batch: %s): a sum leaving the safe range on the all-time board writes the daily board neither",
    async (batch) => {
      const lb = new Leaderboard(redis, `sums-${batch}`, {
        prefix,
        periods: ["daily", "all"],
        update: "increment",
        graceMs: 2 * 86_400_000,
        batch,
      });
      const max = Number.MAX_SAFE_INTEGER;
      const now = Date.now();
      await lb.submit("big", max - 10, { at: now - 86_400_000 }); // yesterday's board and the all-time board
      const settled = await Promise.allSettled([
        lb.submit("big", 5, { at: now }),
        lb.submit("big", 10, { at: now }),
        lb.submit("big", 1, { at: now }),
      ]);
      expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(ScoreOverflowError);
      const last = (settled[2] as PromiseFulfilledResult<SubmitResult>).value;
      expect([last.periods.daily?.score, last.periods.all?.score]).toEqual([6, max - 4]);
      expect((await lb.rank("big", { at: now }))?.score).toBe(6);
      expect((await lb.rank("big", { period: "all" }))?.score).toBe(max - 4);
    },
  );

  it("calls on one member apply in call order", async () => {
    const lb = new Leaderboard(redis, "order", { prefix, update: "replace", batch: { maxSize: 7 } });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => lb.submit("m", i + 1)));
    expect(results.map((r) => r.score)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await lb.rank("m"))?.score).toBe(20);
    // Equal scores rank by arrival, which is call order.
    const ties = new Leaderboard(redis, "ties", { prefix, batch: true });
    await Promise.all(["p", "q", "r", "s"].map((m) => ties.submit(m, 10)));
    expect((await ties.top(4)).map((e) => e.member)).toEqual(["p", "q", "r", "s"]);
  });

  it("reports one observer event per call", async () => {
    const observer = recordObserver();
    const { ops: events } = observer;
    const lb = new Leaderboard(redis, "events", { prefix, update: "increment", batch: true, observer });
    await Promise.allSettled([lb.submit("a", 1), lb.submit("a", 0), lb.submit("a", Number.MAX_SAFE_INTEGER)]);
    expect(events.map((e) => [e.op, e.outcome])).toEqual([
      ["submit", "updated"],
      ["submit", "unchanged"],
      ["submit", "error"],
    ]);
  });

  it("works on Redis Cluster (every key of a leaderboard shares one slot)", async () => {
    const cluster = connect(inject("coordisClusterUrl"));
    try {
      const bursts: Call[][] = [
        Array.from({ length: 30 }, (_, i) => ({ member: `m${i % 9}`, score: (i * 13) % 17 })),
        Array.from({ length: 10 }, (_, i) => ({ member: `m${i}`, score: i, meta: { n: i } })),
      ];
      const { got, want, batched, plain } = await both(cluster, "cluster", { periods: ["weekly", "all"] }, bursts);
      expect(got).toEqual(want);
      expect(await batched.top(20)).toEqual(await plain.top(20));
    } finally {
      cluster.disconnect();
    }
  });
});

describe("micro-batched submit on a server of its own", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = connect(server.url);
    await redis.ping();
    const warm = new Leaderboard(redis, "warm", { prefix, batch: true });
    await Promise.all([warm.submit("w", 1), warm.submit("v", 1)]); // two: a lone call takes the plain script
    await warm.submit("w", 2);
    await warm.rank("w");
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it("N concurrent submits are one EVALSHA; maxSize splits them", async () => {
    const lb = new Leaderboard(redis, "one", { prefix, periods: ["daily", "all"], batch: { maxSize: 100 } });
    const one = await countCommands(server, () =>
      Promise.all(Array.from({ length: 50 }, (_, i) => lb.submit(`p${i}`, i))),
    );
    expect(one.sent).toEqual({ evalsha: 1 });
    expect(one.result[49]).toMatchObject({ score: 49, rank: 1, updated: true });
    const small = new Leaderboard(redis, "split", { prefix, batch: { maxSize: 8 } });
    const split = await countCommands(server, () =>
      Promise.all(Array.from({ length: 20 }, (_, i) => small.submit(`p${i}`, i))),
    );
    expect(split.sent).toEqual({ evalsha: 3 });
  });

  it("a submit alone in its event-loop turn is sent as the plain submit script; call order holds beside batches", async () => {
    const own = await startRedis();
    try {
      const client = own.client();
      const lb = new Leaderboard(client, "lone", { prefix, batch: { maxSize: 2 } });
      const lone = await countCommands(own, () => lb.submit("a", 5));
      expect(lone.result).toMatchObject({ score: 5, rank: 1, updated: true });
      expect(lone.sent).toEqual({ evalsha: 1, eval: 1 }); // the first call on a fresh server loads the script
      expect(
        await client.script("EXISTS", leaderboardScripts.submit.sha1, leaderboardScripts.submitBatch.sha1),
      ).toEqual([1, 0]);
      // submit is cached, submit-batch is not: a batch of two (which meets NOSCRIPT) and a lone call issued
      // together still apply in call order.
      const three = await Promise.all([lb.submit("a", 6), lb.submit("b", 6), lb.submit("c", 6)]);
      expect(three.map((r) => [r.rank, r.updated])).toEqual([
        [1, true],
        [2, true],
        [3, true],
      ]);
      expect(await client.script("EXISTS", leaderboardScripts.submitBatch.sha1)).toEqual([1]);
    } finally {
      await own.stop();
    }
  });

  it("other operations send the queued submits first, so they see them", async () => {
    const lb = new Leaderboard(redis, "flush", { prefix, batch: true });
    const { result, sent } = await countCommands(server, async () => {
      const submitted = lb.submit("f", 7);
      const ranked = lb.rank("f");
      return Promise.all([submitted, ranked]);
    });
    expect(sent).toEqual({ evalsha: 2 });
    expect(result[1]).toMatchObject({ member: "f", score: 7, rank: 1 });
  });

  it("an `at` past the calendar fails only its own caller, before queueing; the calls beside it apply", async () => {
    const lb = new Leaderboard(redis, "late-date", { prefix, periods: ["daily", "all"], batch: true });
    const now = Date.now();
    const settled = await Promise.allSettled([
      lb.submit("x", 1, { at: now }),
      lb.submit("y", 2, { at: 8.64e15 }),
      lb.submit("z", 3, { at: now }),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    const reason = (settled[1] as PromiseRejectedResult).reason;
    expect(reason).toBeInstanceOf(InvalidArgumentError);
    expect((reason as InvalidArgumentError).argument).toBe("at");
    expect((await lb.top(5, { at: now })).map((e) => e.member)).toEqual(["z", "x"]);
  });

  it("bad input is rejected before queueing; nothing is sent for it", async () => {
    const lb = new Leaderboard(redis, "bad", { prefix, update: "increment", batch: true });
    const { result, roundTrips } = await countCommands(server, () =>
      Promise.allSettled([
        lb.submit("", 1),
        lb.submit("a", Number.NaN),
        lb.submit("a", 2 ** 60),
        lb.submit("a", 1, { at: -1 }),
      ]),
    );
    expect(roundTrips).toBe(0);
    const args = result.map((s) => {
      const reason = (s as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(InvalidArgumentError);
      return (reason as InvalidArgumentError).argument;
    });
    expect(args).toEqual(["member", "score", "score", "at"]);
    expect(() => new Leaderboard(redis, "bad", { prefix, batch: { maxSize: 0 } })).toThrow(
      expect.objectContaining({ argument: "options.batch.maxSize" }),
    );
  });
});
