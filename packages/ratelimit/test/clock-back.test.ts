import { type Algorithm, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];

/** TIME's reply (seconds, microseconds) at instant `at` (ms). */
const timeOf = (at: number): [string, string] => [String(Math.floor(at / 1000)), String((at % 1000) * 1000)];

/**
 * Redis' clock may go back: a failover to a replica whose clock is a few ms behind, a step of the host's clock. A
 * rule's state written "in the future" must still count: no rule may admit more than its limit because of it.
 */
describe("rate limits when Redis' clock goes back", () => {
  const clients = sharedClients();

  it("every algorithm, one rule or several, on every script path: the clock 3 ms back across a window edge admits nothing more", async () => {
    const admin = clients.admin;
    const consumeSha = (await admin.script("LOAD", atTime(ratelimitScripts.consume.source))) as string;
    const batchSha = (await admin.script("LOAD", atTime(ratelimitScripts.consumeBatch.source))) as string;
    const [s] = (await admin.time()) as unknown as [string, string];
    // A window start (aligned on 1 s and 60 s) ahead of the server: nothing written expires meanwhile.
    const base = (Math.floor(Number(s) / 60) + 100_000) * 60_000;
    const problems: string[] = [];
    let round = 0;
    for (const algorithm of ALGS) {
      const sets: Record<string, Rule[]> = {
        "one rule": [{ name: "r", limit: 5, windowMs: 1_000, algorithm }],
        "two rules": [
          { name: "r", limit: 5, windowMs: 1_000, algorithm },
          { name: "day", limit: 1_000, windowMs: 60_000 },
        ],
      };
      for (const [what, given] of Object.entries(sets)) {
        const rules = normalizeRules(given);
        const args = rulesArgs(rules);
        for (const path of ["fast path", "shared key (general path)", "batch"] as const) {
          const key = `${prefix}:rl:{clock-${round++}}`;
          // Another limiter's entry on the key: the script takes its general path.
          if (path === "shared key (general path)") {
            const other = normalizeRules([{ name: "other", limit: 10, windowMs: 60_000 }]);
            await admin.evalsha(consumeSha, 1, key, "1", ...rulesArgs(other), ...timeOf(base));
          }
          const consume = async (at: number): Promise<boolean> => {
            if (path === "batch") {
              const [reply] = (await admin.evalsha(batchSha, 1, key, "1", ...args, ...timeOf(at))) as [never];
              return decisionFromReply(reply, rules).allowed;
            }
            return decisionFromReply(
              (await admin.evalsha(consumeSha, 1, key, "1", ...args, ...timeOf(at))) as never,
              rules,
            ).allowed;
          };
          // Calls in the first ms of a window until the limit, then the clock goes 3 ms back, into the window before.
          let admitted = 0;
          for (let i = 0; i < 6; i++) if (await consume(base + 2)) admitted++;
          for (let i = 0; i < 6; i++) if (await consume(base - 1)) admitted++;
          if (admitted !== 5) {
            problems.push(
              `${algorithm}, ${what}, ${path}: ${admitted} admitted (limit 5); stored ${await admin.get(key)}`,
            );
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });
});
