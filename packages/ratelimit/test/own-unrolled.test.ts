import { type NormalizedRule, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { normalizeRules, rulesArgs } from "../src/rules.js";
import { specialiseConsume } from "../src/specialised.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTimeScripts, randomRules } from "./fixtures/differential.js";

const prefix = testPrefix();

// A limiter's own consume script of several rules decides the usual call with its rules unrolled into straight-line
// code (lua/_lib/ratelimit-own.lua) and hands everything else to rl_fast's loop. Here the shared script, rules in
// ARGV, and the own script run the same calls at the same server instants on twin keys: every reply, every stored
// byte and every key expiry must be equal, through admissions, rejections, expired entries, entries of other
// limiters, rules reordered or changed, buckets stored in another rate.
describe("a limiter's own script of several rules decides and writes exactly as the shared script", () => {
  const clients = sharedClients();
  const key = (name: string) => `${prefix}:rl:{${name}}`;
  const { load, run, own } = atTimeScripts(() => clients.admin as Redis);

  const rulesOf = (next: () => number, names: string[]): Rule[] => randomRules(next, names, 0, 0.35);

  it("random rule sets, costs, instants and stored values", async () => {
    const shared = await load(ratelimitScripts.consume.source);
    const ownSha = (rules: readonly NormalizedRule[]) =>
      own(rules, (source, id) => expect(source, id).toContain("repeat -- the rules' usual call"));
    const [s] = (await clients.admin.time()) as unknown as [string, string];
    const base = Number(s) * 1000 + 100 * 86_400_000; // keys written with it (PXAT) do not expire during the test
    const next = mulberry32(20261207);
    const tally = { admitted: 0, rejected: 0, seeded: 0 };
    for (let seq = 0; seq < 200; seq++) {
      const [sharedKey, ownKey] = [key(`own-${process.pid}-${seq}-shared`), key(`own-${process.pid}-${seq}-own`)];
      await clients.admin.del(sharedKey, ownKey);
      const names = ["a", "b", "c", "d", "x.y-z"].sort(() => next() - 0.5);
      let rules = normalizeRules(rulesOf(next, names));
      let at = base + Math.floor(next() * 1e9);
      for (let step = 0; step < 16; step++) {
        at += [0, 1, 37, 999, 1_000, 2_500, 59_999, 61_000, 3_600_000][Math.floor(next() * 9)] as number;
        if (next() < 0.05) at -= 1 + Math.floor(next() * 3); // Redis' clock steps back
        const roll = next();
        if (roll < 0.05) {
          // the same names reordered, or other limits and algorithms (a rule change)
          rules = normalizeRules(
            rulesOf(
              next,
              names.sort(() => next() - 0.5),
            ),
          );
        } else if (roll < 0.1) {
          // the same rules with other limits (a bucket's capacity or rate, a window's limit)
          rules = normalizeRules(
            rules.map(({ name, algorithm, windowMs }) => {
              const burst = next() < 0.5 ? 1 + Math.floor(next() * 6) : undefined;
              const limit = 1 + Math.floor(next() * 6);
              const bucket = algorithm === "token-bucket" || algorithm === "gcra";
              return { name, algorithm, windowMs, limit, ...(bucket && burst !== undefined ? { burst } : {}) };
            }),
          );
        } else if (roll < 0.16) {
          // another limiter on the key, or the same rules' entries written long ago (expired, another order)
          const pick = next();
          const other =
            pick < 0.33
              ? [...rules].reverse()
              : normalizeRules(rulesOf(next, pick < 0.66 ? ["o", "p", "q"] : rules.map((r) => r.name)));
          const past = at - ([1, 5_000, 4_000_000][Math.floor(next() * 3)] as number);
          const args = [1 + Math.floor(next() * 2), ...rulesArgs(other)];
          await run(shared, sharedKey, args, past);
          await run(shared, ownKey, args, past);
          tally.seeded++;
        } else if (roll < 0.3) {
          // a value written by hand: an entry of the rules expiring at this instant or about it, or a stray entry
          const value = await clients.admin.get(sharedKey);
          if (value !== null) {
            const edited =
              next() < 0.5
                ? value.replace(/=(\d+):/g, (m: string) => (next() < 0.5 ? `=${at - 1 + Math.floor(next() * 3)}:` : m))
                : `${value};z|fw=${at + 50_000}:${at}:1`;
            for (const k of [sharedKey, ownKey]) await clients.admin.set(k, edited, "PXAT", at + 90_000);
            tally.seeded++;
          }
        }
        const minCap = Math.min(...rules.map((r) => r.capacity));
        const cost = 1 + Math.floor(next() * Math.min(3, minCap));
        const where = `seq ${seq} step ${step} at ${at} cost ${cost} rules ${rulesArgs(rules).join(" ")}`;
        const before = await clients.admin.get(sharedKey);
        const sharedReply = await run(shared, sharedKey, [cost, ...rulesArgs(rules)], at);
        const ownReply = await run(await ownSha(rules), ownKey, [cost], at);
        expect(ownReply, `${where} from ${before}`).toEqual(sharedReply);
        if (typeof sharedReply === "string") tally.admitted++;
        else tally.rejected++;
        const [sharedValue, ownValue, sharedExp, ownExp] = await Promise.all([
          clients.admin.get(sharedKey),
          clients.admin.get(ownKey),
          clients.admin.pexpiretime(sharedKey),
          clients.admin.pexpiretime(ownKey),
        ]);
        expect(ownValue, `${where} from ${before}`).toBe(sharedValue);
        expect(ownExp, `${where} from ${before}`).toBe(sharedExp);
      }
    }
    // every kind of call was met many times
    expect(tally.admitted).toBeGreaterThan(600);
    expect(tally.rejected).toBeGreaterThan(300);
    expect(tally.seeded).toBeGreaterThan(150);
  });

  it("rule sets of more than four rules keep the loop", () => {
    const many = normalizeRules(
      Array.from({ length: 7 }, (_, j) => ({
        name: `r${j}`,
        limit: 10,
        windowMs: 60_000,
        algorithm: "sliding-window" as const,
      })),
    );
    const source = specialiseConsume(rulesArgs(many))?.source ?? "";
    expect(source).toContain("local rules, ri = { 'r0|sw', 10, -60000,");
    expect(source).not.toContain("repeat -- the rules' usual call");
  });
});
