import { type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { decisionFromReply } from "../src/decision.js";
import { MemoryLimiter } from "../src/memory-limiter.js";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix();
const DAY = 86_400_000;

/** TIME's reply (seconds, microseconds) at instant `at` (ms). */
const timeOf = (at: number): [string, string] => [String(Math.floor(at / 1000)), String((at % 1000) * 1000)];

// retryAfterMs is "the earliest time after which the same call passes", to the millisecond. A tolerance in units
// (1e-9 in the scripts, 1e-6 in the memory fallback) is a tolerance in time of tolerance × windowMs / count: with
// windows of weeks or a year it let a call pass milliseconds to seconds before the instant announced to the caller.
describe("long windows: a rejected call does not pass before its retryAfterMs", () => {
  const clients = sharedClients();

  const cases: Array<[string, Rule[]]> = [
    ["sliding window 1 per 365 days", [{ name: "y", limit: 1, windowMs: 365 * DAY, algorithm: "sliding-window" }]],
    ["sliding window 2 per 30 days", [{ name: "m", limit: 2, windowMs: 30 * DAY, algorithm: "sliding-window" }]],
    [
      "two rules, the sliding window 1 per 365 days deciding",
      [
        { name: "s", limit: 5, windowMs: 1_000 },
        { name: "y", limit: 1, windowMs: 365 * DAY, algorithm: "sliding-window" },
      ],
    ],
  ];

  it.each(cases)("Redis, %s", async (_what, given) => {
    const admin = clients.admin;
    const rules = normalizeRules(given);
    const args = rulesArgs(rules);
    const sha = (await admin.script("LOAD", atTime(ratelimitScripts.consume.source))) as string;
    const peekSha = (await admin.script("LOAD", atTime(ratelimitScripts.peek.source))) as string;
    const w = Math.max(...rules.map((r) => r.windowMs));
    const [s] = (await admin.time()) as unknown as [string, string];
    // An instant a little into an epoch-aligned window, ahead of the server (nothing written expires meanwhile).
    const start = Math.ceil((Number(s) * 1000) / w) * w + 2 * w;
    const key = `${prefix}:rl:{long-${_what.length}-${rules.length}}`;
    const copy = `${key}:copy`;
    const consume = async (k: string, at: number) =>
      decisionFromReply((await admin.evalsha(sha, 1, k, "1", ...args, ...timeOf(at))) as never, rules);
    await admin.del(key);
    // Fill the window (the last call just before its end), then ask early in the next one.
    const limit = Math.min(...rules.map((r) => (r.algorithm === "sliding-window" ? r.limit : Number.MAX_VALUE)));
    for (let i = 0; i < limit; i++) expect((await consume(key, start + w - 1_000 + i)).allowed).toBe(true);
    const t = start + w + 1_000;
    const rejected = await consume(key, t);
    expect(rejected.allowed).toBe(false);
    const state = await admin.get(key);
    const onCopy = async (at: number) => {
      await admin.set(copy, state as string);
      return consume(copy, at);
    };
    const retry = rejected.retryAfterMs;
    expect((await onCopy(t + retry - 1)).allowed, `1 ms before retryAfterMs ${retry}`).toBe(false);
    expect((await onCopy(t + retry)).allowed, `at retryAfterMs ${retry}`).toBe(true);
    // peek agrees with consume
    await admin.set(copy, state as string);
    const peeked = decisionFromReply(
      (await admin.evalsha(peekSha, 1, copy, "1", rulesSpec(rules), ...timeOf(t + retry - 1))) as never,
      rules,
    );
    expect(peeked.allowed).toBe(false);
    // and reports no unit left (remaining and the decision use the same exact comparison)
    expect(peeked.remaining).toBe(0);
    await admin.del(key, copy);
  });

  it.each([
    ["sliding-window", 365 * DAY],
    ["sliding-window", 7 * DAY],
    ["token-bucket", 365 * DAY],
    ["token-bucket", DAY],
    ["gcra", 365 * DAY],
    ["fixed-window", 365 * DAY],
  ] as const)("memory fallback, %s 1 per %d ms", (algorithm, windowMs) => {
    const rules = normalizeRules([{ name: "x", limit: 1, windowMs, algorithm }]);
    const m = new MemoryLimiter();
    const w = windowMs;
    const start = Math.ceil(1_800_000_000_000 / w) * w;
    expect(m.consume("k", 1, rules, start + w - 1_000).allowed).toBe(true);
    const t = start + w + 1_000;
    const rejected = m.consume("k", 1, rules, t);
    expect(rejected.allowed).toBe(false);
    const retry = rejected.retryAfterMs;
    const peeked = m.peek("k", rules, t + retry - 1);
    expect(peeked.allowed, `peek 1 ms before retryAfterMs ${retry}`).toBe(false);
    expect(peeked.remaining).toBe(0);
    expect(m.consume("k", 1, rules, t + retry - 1).allowed, `1 ms before retryAfterMs ${retry}`).toBe(false);
    expect(m.consume("k", 1, rules, t + retry).allowed, `at retryAfterMs ${retry}`).toBe(true);
  });
});
