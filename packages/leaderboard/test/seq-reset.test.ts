import { connect, type RedisClient } from "@coordis/core";
import { Leaderboard } from "@coordis/leaderboard";
import { testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("lb-seq");

/**
 * The arrival counter (`…:seq`) lost on its own (deleted by hand, evicted by a Redis that evicts): the README asks for
 * a Redis that does not evict, since ties then rank by the restarted numbers. What must not happen is data loss: a
 * member whose new entry draws the very arrival number of its old one must stay on the board with its new score.
 */
describe("a leaderboard whose arrival counter was lost", () => {
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl")); // DEL is outside the leaderboard's ACL rules
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  it.each([
    ["desc, unbatched", "desc", false],
    ["asc, unbatched", "asc", false],
    ["desc, batched", "desc", true],
  ] as const)(
    "%s: a member whose new entry draws its old arrival number keeps its new score",
    async (label, order, batch) => {
      const name = `seq-${label.replace(/\W+/g, "-")}`;
      const lb = new Leaderboard<string>(redis, name, { prefix, order, batch });
      await lb.submit("alice", 10);
      await lb.submit("bob", 20);
      expect(await admin.del(`${prefix}:lb:{${name}}:seq`)).toBe(1);
      // The counter restarts: alice's improvement draws arrival number 1 again, the one her entry holds.
      const better = order === "desc" ? 30 : 5;
      await lb.submit("alice", better);
      expect(await lb.rank("alice")).toMatchObject({ member: "alice", score: better, rank: 1 });
      expect(await lb.count()).toBe(2);
      expect((await lb.top(10)).map((e) => [e.member, e.score])).toEqual([
        ["alice", better],
        ["bob", 20],
      ]);
    },
  );
});

/**
 * The board's sorted set lost on its own while its member index survives (deleted by hand, evicted by a Redis that
 * evicts): reads must answer "not on the board", not fail with a script error, and a new submit puts the member back.
 */
describe("a leaderboard whose sorted set was lost but not its member index", () => {
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
    admin = connect(inject("coordisAdminRedisUrl")); // DEL is outside the leaderboard's ACL rules
  });
  afterAll(() => {
    redis.disconnect();
    admin.disconnect();
  });

  it.each(["desc", "asc"] as const)(
    "%s: rank, percentile and around answer as for a member not on the board",
    async (order) => {
      const name = `lost-zset-${order}`;
      const lb = new Leaderboard<string>(redis, name, { prefix, order });
      await lb.submit("alice", 10);
      await lb.submit("bob", 20);
      expect(await admin.del(`${prefix}:lb:{${name}}:all`)).toBe(1);
      expect(await admin.hlen(`${prefix}:lb:{${name}}:all:idx`)).toBe(2);
      expect(await lb.rank("alice")).toBeNull();
      expect(await lb.percentile("alice")).toBeNull();
      expect(await lb.around("alice", 2)).toEqual([]);
      await lb.submit("alice", 30);
      expect(await lb.rank("alice")).toMatchObject({ member: "alice", score: 30, rank: 1 });
      expect((await lb.around("alice", 2)).map((e) => [e.member, e.score])).toEqual([["alice", 30]]);
    },
  );
});
