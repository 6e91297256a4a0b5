import { type NormalizedRule, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import type { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { normalizeRules, rulesArgs } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { ALGS, atTimeScripts } from "./fixtures/differential.js";

const prefix = testPrefix();

// A limiter's own consume script (lua/_lib/ratelimit-own.lua) cuts a new expiry out of the value it formatted, at a
// place it computes assuming 13-digit instants, and writes a new key's entries with one format. Here it runs against
// the shared script (rules in ARGV) at server instants of 12, 13 and 14 digits and across the 1e12 and 1e13
// boundaries, with the numbers of rules near their bounds: limits of 1 and 1e9, windows of 1 ms to 365 days (past
// 2^31 ms), bucket capacities whose ticks are near 2^53, costs above 1, and one to five rules (past the four
// unrolled). Every reply, stored byte and key expiry must be equal.
describe("a limiter's own script at extreme instants and rule numbers decides and writes as the shared script", () => {
  const clients = sharedClients();
  const key = (name: string) => `${prefix}:rl:{${name}}`;
  const { load, run, own } = atTimeScripts(() => clients.admin as Redis);
  const WINDOWS = [1, 2, 3, 7, 1000, 2 ** 31 - 1, 2 ** 31 + 1, 365 * 86_400_000, 86_400_000 * 200 + 7];
  const LIMITS = [1, 2, 3, 999_999_937, 1_000_000_000, 7];
  const rulesOf = (next: () => number, names: string[]): NormalizedRule[] => {
    for (;;) {
      const n = 1 + Math.floor(next() * 5);
      const rules: Rule[] = names.slice(0, n).map((name) => {
        const algorithm = ALGS[Math.floor(next() * ALGS.length)] as Rule["algorithm"] & string;
        const limit = LIMITS[Math.floor(next() * LIMITS.length)] as number;
        const windowMs = WINDOWS[Math.floor(next() * WINDOWS.length)] as number;
        const bucket = algorithm === "token-bucket" || algorithm === "gcra";
        const burst =
          bucket && next() < 0.5 ? [1, 2, 4096, 1_000_000_000, 4_194_303][Math.floor(next() * 5)] : undefined;
        return { name, algorithm, limit, windowMs, ...(burst === undefined ? {} : { burst }) };
      });
      try {
        return normalizeRules(rules);
      } catch {
        // a burst past 2^53 ticks, refused as documented: draw again
      }
    }
  };
  const BASES = [
    5e11,
    1e12 - 50,
    1e12 + 3,
    1e12 + 2 ** 31,
    1e12 + 365 * 86_400_000 - 5,
    1e13 - 2 ** 31,
    1e13 - 40,
    1e13 + 5,
    2e13,
  ];

  it("random rule sets near their bounds, instants of 12 to 14 digits", async () => {
    const shared = await load(ratelimitScripts.consume.source);
    const next = mulberry32(424242);
    const tally = { admitted: 0, rejected: 0, newKeys: 0 };
    for (let seq = 0; seq < 600; seq++) {
      const [sharedKey, ownKey] = [key(`x-${process.pid}-${seq}-s`), key(`x-${process.pid}-${seq}-o`)];
      const names = ["a", "b", "c", "d", "e"];
      let rules = rulesOf(next, names);
      let at = (BASES[Math.floor(next() * BASES.length)] as number) + Math.floor(next() * 20);
      for (let step = 0; step < 12; step++) {
        at += [0, 1, 2, 3, 1000, 2 ** 31][Math.floor(next() * 6)] as number;
        if (next() < 0.05) at -= 1 + Math.floor(next() * 3); // Redis' clock steps back
        if (next() < 0.1) rules = rulesOf(next, names); // a rule change
        const minCap = Math.min(...rules.map((r) => r.capacity));
        const cost = next() < 0.5 ? 1 : 1 + Math.floor(next() * Math.min(5, minCap));
        const where = `seq ${seq} step ${step} at ${at} cost ${cost} rules ${rulesArgs(rules).join(" ")}`;
        const before = await clients.admin.get(sharedKey);
        if (before === null) tally.newKeys++;
        const sharedReply = await run(shared, sharedKey, [cost, ...rulesArgs(rules)], at);
        const ownReply = await run(await own(rules, () => {}), ownKey, [cost], at);
        expect(ownReply, `${where} from ${before}`).toEqual(sharedReply);
        const admitted = Array.isArray(sharedReply)
          ? sharedReply[0] === 1
          : typeof sharedReply === "string" || (sharedReply as number) >= 0;
        if (admitted) tally.admitted++;
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
      await clients.admin.del(sharedKey, ownKey);
    }
    // every kind of call was met many times
    expect(tally.admitted).toBeGreaterThan(1000);
    expect(tally.rejected).toBeGreaterThan(500);
    expect(tally.newKeys).toBeGreaterThan(1000);
  });
});
