import { connect, type RedisClient, RedisUnavailableError, ScriptError } from "@coordis/core";
import { Leaderboard, type LeaderboardOptions } from "@coordis/leaderboard";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("lbr");
const DAY = 86_400_000;

/** The class of each settled call's error ("ok" for a call that succeeded). */
async function kinds(calls: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(calls);
  return settled.map((s) => (s.status === "fulfilled" ? "ok" : (s.reason as Error).constructor.name));
}

describe("micro-batched submits refused by a Redis that does not take writes", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    admin = connect(server.adminUrl);
    redis = connect(server.url);
  });
  afterAll(async () => {
    admin.disconnect();
    redis.disconnect();
    await server.stop();
  });

  // One board (all-time), one board per period (daily + all), several boards (today and yesterday): each path of the
  // batch script.
  it.each<[string, LeaderboardOptions, number | undefined]>([
    ["one board", { periods: ["all"] }, undefined],
    ["one board per period", { periods: ["daily", "all"] }, undefined],
    ["several boards", { periods: ["daily"] }, Date.now() - DAY],
  ])("%s: each caller gets RedisUnavailableError, as unbatched, and nothing is written", async (_, options, at) => {
    const name = `refused-${options.periods?.join("-")}-${at === undefined ? "now" : "past"}`;
    const batched = new Leaderboard(redis, name, { ...options, prefix, batch: true });
    const plain = new Leaderboard(redis, name, { ...options, prefix });
    await Promise.all([batched.submit("a", 1), batched.submit("b", 1)]);
    // No replica is connected: Redis refuses every write (NOREPLICAS), a refusal that a retry later may pass.
    await admin.config("SET", "min-replicas-to-write", "1");
    try {
      const unbatched = await kinds([plain.submit("a", 5)]);
      expect(unbatched).toEqual([RedisUnavailableError.name]);
      const got = await kinds([batched.submit("a", 6), batched.submit("b", 6, at === undefined ? undefined : { at })]);
      expect(got).toEqual([RedisUnavailableError.name, RedisUnavailableError.name]);
      expect(got).not.toContain(ScriptError.name);
    } finally {
      await admin.config("SET", "min-replicas-to-write", "0");
    }
    expect((await plain.top(10)).map((e) => [e.member, e.score])).toEqual([
      ["a", 1],
      ["b", 1],
    ]);
  });
});
