import { type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime, previousArgs } from "./fixtures/previous-release.js";
import { previousScripts } from "./fixtures/previous-scripts.js";

const prefix = testPrefix();
const YEAR = 365 * 86_400_000;

/**
 * The several-rule string reply carries each entry's expAtMs; a bucket's resetMs must not be read back as
 * expAtMs - now when now + resetMs is past 2^53 (expAtMs is then rounded to an even integer): the previous release
 * (and the one-rule reply) give the exact ceil((capacity ticks - level) / ticks per ms).
 */
describe("consume, several rules admitted: the string reply near 2^53", () => {
  const clients = sharedClients();
  const key = (name: string) => `${prefix}:rl:{${name}}`;

  it.each(["token-bucket", "gcra"] as const)(
    "%s: a bucket emptied to a refill past 2^53 ms from now: the same resetMs as the previous release",
    async (algorithm) => {
      // 1 unit a year, a burst of 285,616 units: the full bucket is 285,616 x 31,536,000,000 ticks (just below 2^53)
      const rules = normalizeRules([
        { name: "year", limit: 1, windowMs: YEAR, burst: 285_616, algorithm },
        { name: "second", limit: 1e9, windowMs: 1_000 },
      ] satisfies Rule[]);
      const [previous = "", consume = ""] = await Promise.all(
        [previousScripts.consume.source, ratelimitScripts.consume.source].map(
          async (s) => (await clients.admin.script("LOAD", atTime(s))) as string,
        ),
      );
      const oldKey = key(`sr-${algorithm}-${process.pid}-old`);
      const newKey = key(`sr-${algorithm}-${process.pid}-new`);
      await clients.admin.del(oldKey, newKey);
      // now = 1,900,000,000,001 ms (odd), the refill of 285,600 units: 9,006,681,600,000,000 ms
      const time = ["1900000000", "1000"];
      const cost = 285_600;
      const oldReply = await clients.admin.evalsha(previous, 1, oldKey, cost, ...previousArgs(rules), ...time);
      const newReply = await clients.admin.evalsha(consume, 1, newKey, cost, ...rulesArgs(rules), ...time);
      expect(typeof newReply).toBe("string");
      const want = decisionFromReply(oldReply as number[], rules);
      expect(want.rules[0]?.resetMs).toBe(9_006_681_600_000_000);
      expect(decisionFromReply(newReply as string, rules)).toEqual(want);
      expect(await clients.admin.get(newKey)).toBe(await clients.admin.get(oldKey));
    },
  );
});
