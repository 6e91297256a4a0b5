import { type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { specialiseConsume } from "../src/specialised.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix();

/** TIME's reply (seconds, microseconds) at instant `at` (ms). */
const timeOf = (at: number): [string, string] => [String(Math.floor(at / 1000)), String((at % 1000) * 1000)];

/**
 * A named window rule whose limit is lowered (a deploy, old and new replicas both running, or a change rolled back):
 * a count above the new limit "counts as full" under the new figures. It must not be cut down to the new limit in
 * what is stored: the old figures (an old replica, or the rule once the change is rolled back) would then admit again
 * units that were taken and never given back.
 */
describe("a window's count above a lowered limit is kept, not cut down to it", () => {
  const clients = sharedClients();

  it("fixed and sliding windows, every consume path: a refund or a consume under the lower limit hands nothing back to the higher one", async () => {
    const admin = clients.admin;
    const load = async (source: string) => (await admin.script("LOAD", atTime(source))) as string;
    const consumeSha = await load(ratelimitScripts.consume.source);
    const batchSha = await load(ratelimitScripts.consumeBatch.source);
    const refundSha = await load(ratelimitScripts.refund.source);
    const [s] = (await admin.time()) as unknown as [string, string];
    // A window start (aligned on 1 s and 60 s) ahead of the server: nothing written expires meanwhile.
    const T = (Math.floor(Number(s) / 60) + 100_000) * 60_000;
    const problems: string[] = [];
    let round = 0;
    for (const algorithm of ["fixed-window", "sliding-window"] as const) {
      const rule = (limit: number): Rule[] => [{ name: "r", limit, windowMs: 1_000, algorithm }];
      const high = normalizeRules(rule(10));
      const low = normalizeRules(rule(5));
      for (const path of ["fast path", "own script", "batch", "shared key (general path)"] as const) {
        const ownSha = async (rules: typeof high) =>
          load((specialiseConsume(rulesArgs(rules)) as { source: string }).source);
        const shas = { high: await ownSha(high), low: await ownSha(low) };
        const run = async (key: string, rules: typeof high, at: number): Promise<boolean> => {
          const args = rulesArgs(rules);
          let reply: unknown;
          if (path === "batch") [reply] = (await admin.evalsha(batchSha, 1, key, 1, ...args, ...timeOf(at))) as [never];
          else if (path === "own script")
            reply = await admin.evalsha(rules === high ? shas.high : shas.low, 1, key, 1, ...timeOf(at));
          else reply = await admin.evalsha(consumeSha, 1, key, 1, ...args, ...timeOf(at));
          return decisionFromReply(reply as never, rules).allowed;
        };
        const fresh = async () => {
          const key = `${prefix}:rl:{lowered-${round++}}`;
          if (path === "shared key (general path)") {
            const other = normalizeRules([{ name: "other", limit: 10, windowMs: 60_000 }]);
            await admin.evalsha(consumeSha, 1, key, "1", ...rulesArgs(other), ...timeOf(T));
          }
          return key;
        };
        const burst = async (key: string, rules: typeof high, at: number) => {
          let n = 0;
          for (let i = 0; i < 12; i++) if (await run(key, rules, at)) n++;
          return n;
        };
        const at = `${algorithm}, ${path}`;

        // 10 taken under the limit of 10, one unit given back under the limit of 5: 9 are still taken, 1 is left.
        {
          const key = await fresh();
          const first = await burst(key, high, T + 100);
          await admin.evalsha(refundSha, 1, key, "1", rulesSpec(low), ...timeOf(T + 101));
          const more = await burst(key, high, T + 102);
          if (first !== 10 || more !== 1) problems.push(`${at}, refund: ${first} then ${more} admitted (10, then 1)`);
        }
        if (algorithm === "sliding-window") {
          // 10 taken in one window; halfway through the next, a call under the limit of 5 passes (the previous
          // window weighs 2.5 there) and must leave the previous window's 10 as they were: at 501 ms into it, the
          // limit of 10 then admits 4 (10 × 0.499 + 5 ≤ 10), not 6.
          const key = await fresh();
          const first = await burst(key, high, T + 100);
          const low1 = await run(key, low, T + 1_500);
          const more = await burst(key, high, T + 1_501);
          if (first !== 10 || !low1 || more !== 4) {
            problems.push(`${at}, consume: ${first}, ${low1}, then ${more} admitted (10, true, then 4)`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });
});
