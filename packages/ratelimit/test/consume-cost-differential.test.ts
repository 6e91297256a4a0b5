import { type NormalizedRule, RateLimiter, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { consumeBeforeOneRuleBlock } from "./fixtures/consume-before-one-rule.js";
import { atTimeScripts, randomRules } from "./fixtures/differential.js";

const prefix = testPrefix();

// A limiter's own copy of one rule decides its usual call in top-level code (lua/_lib/ratelimit-own.lua, "@<alg>
// one"), the copies of two to four rules no longer build a function per call, and a cost of 1 is sent as no argument.
// Here the consume script as it was before (a fixture), the current shared script and the current own copy run the
// same calls at the same server instants on their own keys, and a fourth key alternates the previous script and the
// own copy (replicas of both versions during a rolling upgrade): every reply, stored byte and key expiry must be
// equal, through admissions, rejections, refunds, Redis' clock stepping back, lowered limits, rule changes, other
// limiters' entries and entries at their expiry instant.
describe("the consume scripts decide and write exactly as before their Redis CPU was cut", () => {
  const clients = sharedClients();
  const key = (name: string) => `${prefix}:rl:{${name}}`;
  const { load, run, own } = atTimeScripts(() => clients.admin as Redis);

  const rulesOf = (next: () => number, names: string[]): Rule[] => randomRules(next, names, 0.7, 0.5);

  it("random rule sets, costs, refunds, instants and stored values", async () => {
    const before = await load(consumeBeforeOneRuleBlock.source);
    const shared = await load(ratelimitScripts.consume.source);
    const refund = await load(ratelimitScripts.refund.source);
    const ownSha = (rules: readonly NormalizedRule[]) =>
      own(rules, (source, id) =>
        expect(source, id).toMatch(rules.length === 1 ? /^repeat -- .*, the only rule: /m : /^repeat -- the rules'/m),
      );
    const [s] = (await clients.admin.time()) as unknown as [string, string];
    const base = Number(s) * 1000 + 100 * 86_400_000; // keys written with it (PXAT) do not expire during the test
    const next = mulberry32(20261208);
    const tally = { admitted: 0, rejected: 0, refunds: 0, seeded: 0, steps: 0, lowered: 0, one: 0 };
    for (let seq = 0; seq < 300; seq++) {
      const keys = ["before", "shared", "own", "mixed"].map((k) => key(`cost-${process.pid}-${seq}-${k}`));
      const [beforeKey, sharedKey, ownKey, mixedKey] = keys as [string, string, string, string];
      await clients.admin.del(...keys);
      const names = ["a", "b", "c", "d", "x.y-z"].sort(() => next() - 0.5);
      let rules = normalizeRules(rulesOf(next, names));
      if (rules.length === 1) tally.one++;
      let at = base + Math.floor(next() * 1e9);
      for (let step = 0; step < 16; step++) {
        at += [0, 0, 1, 37, 999, 1_000, 2_500, 59_999, 61_000, 3_600_000][Math.floor(next() * 10)] as number;
        if (next() < 0.06) {
          at -= 1 + Math.floor(next() * 3_000); // Redis' clock steps back
          tally.steps++;
        }
        const roll = next();
        if (roll < 0.05) {
          // other rules, limits, algorithms
          rules = normalizeRules(
            rulesOf(
              next,
              names.sort(() => next() - 0.5),
            ),
          );
        } else if (roll < 0.12) {
          // the same rules with lower limits (a bucket's capacity or rate, a window's limit)
          rules = normalizeRules(
            rules.map(({ name, algorithm, windowMs, limit }) => {
              const lower = 1 + Math.floor(next() * Math.min(limit, 6));
              const bucket = algorithm === "token-bucket" || algorithm === "gcra";
              const burst = bucket && next() < 0.5 ? 1 + Math.floor(next() * 6) : undefined;
              return { name, algorithm, windowMs, limit: lower, ...(burst === undefined ? {} : { burst }) };
            }),
          );
          tally.lowered++;
        } else if (roll < 0.18) {
          // another limiter on the key, or the same rules' entries written long ago (expired, another order)
          const pick = next();
          const other =
            pick < 0.33
              ? [...rules].reverse()
              : normalizeRules(rulesOf(next, pick < 0.66 ? ["o", "p", "q"] : rules.map((r) => r.name)));
          const past = at - ([1, 5_000, 4_000_000][Math.floor(next() * 3)] as number);
          const args = [1 + Math.floor(next() * 2), ...rulesArgs(other)];
          for (const k of keys) await run(before, k, args, past);
          tally.seeded++;
        } else if (roll < 0.3) {
          // a value written by hand: an entry expiring at this instant or about it, or a stray entry
          const value = await clients.admin.get(beforeKey);
          if (value !== null) {
            const edited =
              next() < 0.5
                ? value.replace(/=(\d+):/g, (m: string) => (next() < 0.5 ? `=${at - 1 + Math.floor(next() * 3)}:` : m))
                : `${value};z|fw=${at + 50_000}:${at}:1`;
            for (const k of keys) await clients.admin.set(k, edited, "PXAT", at + 90_000);
            tally.seeded++;
          }
        }
        const minCap = Math.min(...rules.map((r) => r.capacity));
        const cost = next() < 0.6 ? 1 : 1 + Math.floor(next() * Math.min(3, minCap));
        const where = `seq ${seq} step ${step} at ${at} cost ${cost} rules ${rulesArgs(rules).join(" ")}`;
        const from = await clients.admin.get(beforeKey);
        if (next() < 0.12) {
          // a refund (the same script on every key): what it gives back and writes must agree too
          const replies = await Promise.all(keys.map((k) => run(refund, k, [cost, rulesSpec(rules)], at)));
          for (const reply of replies) expect(reply, `refund ${where} from ${from}`).toEqual(replies[0]);
          tally.refunds++;
        } else {
          const ruleArgs = rulesArgs(rules);
          const ownArgs = cost === 1 ? [] : [cost]; // as the limiter sends it: a cost of 1 as no argument
          const sha = await ownSha(rules);
          const expected = await run(before, beforeKey, [cost, ...ruleArgs], at);
          expect(await run(shared, sharedKey, [cost, ...ruleArgs], at), `shared ${where} from ${from}`).toEqual(
            expected,
          );
          expect(await run(sha, ownKey, ownArgs, at), `own ${where} from ${from}`).toEqual(expected);
          const mixed = next() < 0.5 ? run(before, mixedKey, [cost, ...ruleArgs], at) : run(sha, mixedKey, ownArgs, at);
          expect(await mixed, `mixed ${where} from ${from}`).toEqual(expected);
          if (Array.isArray(expected) ? expected[0] === 0 : typeof expected === "number" && expected < 0)
            tally.rejected++;
          else tally.admitted++;
        }
        const values = await Promise.all(keys.map((k) => clients.admin.get(k)));
        const expiries = await Promise.all(keys.map((k) => clients.admin.pexpiretime(k)));
        for (let j = 1; j < keys.length; j++) {
          expect(values[j], `${keys[j]}: ${where} from ${from}`).toBe(values[0]);
          expect(expiries[j], `${keys[j]}: ${where} from ${from}`).toBe(expiries[0]);
        }
      }
    }
    // every kind of call was met many times
    expect(tally.one).toBeGreaterThan(150);
    expect(tally.admitted).toBeGreaterThan(1_500);
    expect(tally.rejected).toBeGreaterThan(500);
    expect(tally.refunds).toBeGreaterThan(300);
    expect(tally.steps).toBeGreaterThan(150);
    expect(tally.lowered).toBeGreaterThan(150);
    expect(tally.seeded).toBeGreaterThan(400);
  });

  it("a limiter sends a cost of 1 as no argument, and any other cost as its one argument", async () => {
    // monitor() opens a connection of its own (the admin client stays as it is).
    const monitor = await (clients.admin as Redis).monitor();
    const sent: string[][] = [];
    let seen: () => void = () => {};
    const three = new Promise<void>((resolve) => {
      seen = resolve;
    });
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (args[0]?.toLowerCase() === "evalsha" && args.some((a) => a.includes(`${prefix}:argv`))) {
        sent.push(args.slice(2));
        if (sent.length === 3) seen();
      }
    });
    try {
      const limiter = new RateLimiter(clients.redis, {
        prefix: `${prefix}:argv`,
        rules: [{ limit: 10, windowMs: 60_000, algorithm: "token-bucket" }],
      });
      expect((await limiter.consume("k")).allowed).toBe(true);
      expect((await limiter.consume("k", 3)).allowed).toBe(true);
      expect((await limiter.consume("k")).remaining).toBe(5); // the default cost of 1 was taken
      await three; // Redis feeds MONITOR as it runs a command, before the command's reply
      expect(sent.map((args) => args.length)).toEqual([2, 3, 2]); // numkeys, key[, cost]
      expect(sent[1]?.[2]).toBe("3");
    } finally {
      monitor.disconnect();
    }
  });
});
