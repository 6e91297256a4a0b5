import type { RedisClient } from "@coordis/core";
import { RateLimiter, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeRules, rulesArgs } from "../src/rules.js";
import { MAX_SPECIALISED_RULE_SETS, specialiseConsume, specialisedConsume } from "../src/specialised.js";

const prefix = testPrefix();
const YEAR = 365 * 24 * 3_600_000;

// A limiter's consume runs a copy of the consume script with the limiter's rules written in as constants, so Redis
// does not receive and convert each rule's arguments on every call. Its decisions and stored bytes equal the shared
// script's (differential.test.ts compares both on random rule sets); here: which script runs, that the copy is
// shared by limiters of one rule set, survives a script cache flush, and stops being made past the per-process limit.
describe("a limiter's own consume script", () => {
  let server: RedisServer;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    redis = server.client();
    await redis.ping();
  });
  afterAll(async () => {
    await server.stop();
  });

  const rulesOf = (n: number): Rule[] => [
    { name: "second", limit: 3 + n, windowMs: 1_000 },
    { name: "minute", limit: 100, windowMs: 60_000, algorithm: "sliding-window" },
    { name: "hour", limit: 1_000, windowMs: YEAR, algorithm: "token-bucket", burst: 10 },
  ];

  it("runs instead of the shared script; its SHA1 is the one Redis computes; limiters of one rule set share it", async () => {
    await redis.script("FLUSH");
    const a = new RateLimiter(redis, { rules: rulesOf(0), prefix });
    const b = new RateLimiter(redis, { rules: rulesOf(0), prefix });
    const own = specialisedConsume(rulesArgs(a.rules));
    expect(own).toBeDefined();
    expect(specialisedConsume(rulesArgs(b.rules))).toBe(own);
    expect(specialisedConsume(rulesArgs(normalizeRules(rulesOf(1))))).not.toBe(own);
    const first = await a.consume("shared", 2);
    const second = await b.consume("shared");
    expect(first.rules.map((r) => r.remaining)).toEqual([1, 98, 8]);
    expect(second.rules.map((r) => r.remaining)).toEqual([0, 97, 7]);
    expect(await redis.script("EXISTS", own?.sha1 ?? "", ratelimitScripts.consume.sha1)).toEqual([1, 0]);
    expect(await redis.script("LOAD", own?.source ?? "")).toBe(own?.sha1);
    const third = await a.consume("shared");
    expect(third.allowed).toBe(false);
    expect(third.rules[0]?.allowed).toBe(false);
  });

  it("a script cache flushed under it (a restart, a failover): the next call loads it again and counts on", async () => {
    const rl = new RateLimiter(redis, { rules: rulesOf(2), prefix });
    expect((await rl.consume("flushed")).rules[0]?.remaining).toBe(4);
    await redis.script("FLUSH");
    expect((await rl.consume("flushed")).rules[0]?.remaining).toBe(3);
    expect(await redis.script("EXISTS", specialisedConsume(rulesArgs(rl.rules))?.sha1 ?? "")).toEqual([1]);
  });

  it(`past ${MAX_SPECIALISED_RULE_SETS} rule sets in a process, a limiter sends its rules in ARGV to the shared script and decides the same`, async () => {
    for (let n = 10; specialisedConsume(rulesArgs(normalizeRules(rulesOf(n)))) !== undefined; n++) {
      expect(n).toBeLessThan(10 + MAX_SPECIALISED_RULE_SETS);
    }
    const late = new RateLimiter(redis, { rules: rulesOf(1_000), prefix });
    expect(specialisedConsume(rulesArgs(late.rules))).toBeUndefined();
    await redis.script("FLUSH");
    const decided = [];
    for (let i = 0; i < 3; i++) decided.push(await late.consume("late", 1 + i));
    expect(decided.map((d) => d.rules.map((r) => r.remaining))).toEqual([
      [1002, 99, 9],
      [1000, 97, 7],
      [997, 94, 4],
    ]);
    expect(await redis.script("EXISTS", ratelimitScripts.consume.sha1)).toEqual([1]);
  });

  it("arguments that are not a rule set's are refused (the shared script is used)", () => {
    expect(specialiseConsume([])).toBeUndefined();
    expect(specialiseConsume(["a'b|fw", "1", "1000"])).toBeUndefined();
    expect(specialiseConsume(["a|fw", "1"])).toBeUndefined();
    const ok = specialiseConsume(rulesArgs(normalizeRules(rulesOf(0))));
    // the rules' table, built once the usual call's block has broken out
    expect(ok?.source).toContain("rules = { 'second|fw', 3, 1000, 'minute|sw', 100, -60000, 'hour|tb', ");
    expect(ok?.args).toEqual(["cost"]);
  });
});
