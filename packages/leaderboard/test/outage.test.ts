import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("lb-outage");

describe("a leaderboard across a Redis outage and restart", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    // The durability the README's restart promise needs: every write in the append-only file before its reply.
    server = await startRedis({ appendOnly: true, config: { appendfsync: "always" } });
    redis = connect(server.url, { commandTimeoutMs: 500, connectTimeoutMs: 500 });
    redis.on("error", () => {});
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });
  const ready = () => waitUntil("the client to reconnect", () => redis.status === "ready", { timeoutMs: 10_000 });

  it.each([
    ["unbatched", false],
    ["batched", true],
  ] as const)(
    "%s: every call rejects with RedisUnavailableError while Redis is down; after a restart the boards, ties, metadata and arrival order carry on",
    async (label, batch) => {
      const lb = new Leaderboard<string>(redis, `o-${label}`, { prefix, periods: ["daily", "all"], batch });
      for (const m of ["a", "b", "c"]) await lb.submit(m, 10, { meta: m.toUpperCase() });
      await lb.submit("d", 20);

      await server.kill();
      const down = await Promise.allSettled([
        lb.submit("e", 10),
        lb.submit("f", 10),
        lb.submitMany([{ member: "g", score: 10 }]),
        lb.top(3),
        lb.rank("a"),
        lb.around("a", 1),
        lb.count({ period: "all" }),
        lb.remove("a"),
      ]);
      for (const s of down) {
        expect(s.status).toBe("rejected");
        expect((s as PromiseRejectedResult).reason).toBeInstanceOf(RedisUnavailableError);
      }

      await server.restart();
      await ready();
      // Unanswered calls were not re-sent after the reconnect: nothing of them reached the boards.
      const want = [
        { member: "d", score: 20, rank: 1, meta: null },
        { member: "a", score: 10, rank: 2, meta: "A" },
        { member: "b", score: 10, rank: 3, meta: "B" },
        { member: "c", score: 10, rank: 4, meta: "C" },
      ];
      expect(await lb.top(10)).toEqual(want);
      expect(await lb.top(10, { period: "all" })).toEqual(want);
      // The arrival counter survived with the boards: a tie reached now ranks behind the older ones, and an equal
      // re-submit keeps its place.
      expect(await lb.submit("h", 10)).toMatchObject({ rank: 5, updated: true, periods: { all: { rank: 5 } } });
      expect(await lb.submit("a", 10)).toMatchObject({ rank: 2, updated: false });
      expect(await lb.around("h", 1)).toMatchObject([{ member: "c" }, { member: "h", rank: 5 }]);
    },
  );

  // A server that lost its scripts (SCRIPT FLUSH, a restart, a failover) answers the first calls with NOSCRIPT, and
  // they are sent again: calls made in one turn must still apply in call order, so ties rank by call order.
  it("submits made while the server lost its scripts still apply in call order (ties rank by call order)", async () => {
    const lb = new Leaderboard(redis, "noscript", { prefix, periods: ["daily", "all"], batch: { maxSize: 3 } });
    await Promise.all([lb.submit("w", 1), lb.submit("v", 1)]);
    await lb.submit("w", 2);
    await lb.submitMany([{ member: "u", score: 1 }]);
    await redis.script("FLUSH");
    const calls = [
      lb.submit("p1", 10),
      lb.submit("p2", 10),
      lb.submit("p3", 10), // a full batch, sent at once
      lb.submit("p4", 10), // sent by the submitMany below, before it
      lb.submitMany([
        { member: "q1", score: 10 },
        { member: "q2", score: 10 },
      ]),
      lb.submit("p5", 10),
      lb.submit("p6", 10), // a batch of two at the end of the turn
    ];
    const top = lb.top(3, { period: "all" }); // after every submit above
    await Promise.all(calls);
    const order = ["p1", "p2", "p3", "p4", "q1", "q2", "p5", "p6"];
    expect((await top).map((e) => e.member)).toEqual(order.slice(0, 3));
    expect((await lb.top(20)).map((e) => e.member).filter((m) => m.length === 2)).toEqual(order);
    expect((await lb.top(20, { period: "all" })).map((e) => e.member).filter((m) => m.length === 2)).toEqual(order);
  });

  it("after a restart that lost everything (no persistence), the scripts are loaded again and the board starts empty", async () => {
    const volatile = await startRedis();
    const client = connect(volatile.url, { commandTimeoutMs: 500, connectTimeoutMs: 500 });
    client.on("error", () => {});
    try {
      const lb = new Leaderboard(client, "gone", { prefix, periods: ["daily", "all"], batch: true });
      await Promise.all([lb.submit("a", 1), lb.submit("b", 2)]);
      expect(await lb.count()).toBe(2);
      await volatile.restart();
      await waitUntil("the client to reconnect", () => client.status === "ready", { timeoutMs: 10_000 });
      expect(await lb.top(5)).toEqual([]);
      const results = await Promise.all([lb.submit("c", 3), lb.submit("d", 3), lb.submit("c", 3)]);
      expect(results.map((r) => [r.rank, r.updated])).toEqual([
        [1, true],
        [2, true],
        [1, false],
      ]);
      expect((await lb.top(5, { period: "all" })).map((e) => e.member)).toEqual(["c", "d"]);
    } finally {
      client.disconnect();
      await volatile.stop();
    }
  });
});
