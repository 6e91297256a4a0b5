import { type Algorithm, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { specialiseConsume } from "../src/specialised.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];
const isBucket = (a: Algorithm) => a === "token-bucket" || a === "gcra";
const short = (a: Algorithm) => (a === "token-bucket" ? "tb" : "gcra");

/** TIME's reply (seconds, microseconds) at instant `at` (ms). */
const timeOf = (at: number): [string, string] => [String(Math.floor(at / 1000)), String((at % 1000) * 1000)];

/**
 * Redis' clock goes back and then forward again: a failover to a replica whose clock is 1 s behind, and back to the
 * first master (or a host clock stepped back, then stepped forward again). A state written at the later instant must
 * count in full under the earlier clock (clock-back.test.ts) and still when the clock is back: a call admitted, or a
 * refund made, while the clock was behind must not credit the rule with the time the clock went back.
 */
describe("rate limits when Redis' clock goes back, then forward again", () => {
  const clients = sharedClients();

  it("every algorithm, every script path: the time the clock went back is not refilled when it comes back", async () => {
    const admin = clients.admin;
    const load = async (source: string) => (await admin.script("LOAD", atTime(source))) as string;
    const consumeSha = await load(ratelimitScripts.consume.source);
    const batchSha = await load(ratelimitScripts.consumeBatch.source);
    const refundSha = await load(ratelimitScripts.refund.source);
    const peekSha = await load(ratelimitScripts.peek.source);
    const [s] = (await admin.time()) as unknown as [string, string];
    // A window start (aligned on 1 s and 60 s) ahead of the server: nothing written expires meanwhile.
    const T = (Math.floor(Number(s) / 60) + 100_000) * 60_000 + 2;
    const BACK = 1_000;
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
        const ownSha = await load((specialiseConsume(args) as { source: string }).source);
        for (const path of ["fast path", "own script", "shared key (general path)", "batch"] as const) {
          for (const via of ["consume", "refund"] as const) {
            const key = `${prefix}:rl:{return-${round++}}`;
            if (path === "shared key (general path)") {
              const other = normalizeRules([{ name: "other", limit: 10, windowMs: 60_000 }]);
              await admin.evalsha(consumeSha, 1, key, "1", ...rulesArgs(other), ...timeOf(T));
            }
            const decide = async (at: number, cost = 1) => {
              let reply: unknown;
              if (path === "batch")
                [reply] = (await admin.evalsha(batchSha, 1, key, cost, ...args, ...timeOf(at))) as [never];
              else if (path === "own script") reply = await admin.evalsha(ownSha, 1, key, cost, ...timeOf(at));
              else reply = await admin.evalsha(consumeSha, 1, key, cost, ...args, ...timeOf(at));
              return decisionFromReply(reply as never, rules);
            };
            const consume = async (at: number, cost = 1) => (await decide(at, cost)).allowed;
            const burst = async (at: number) => {
              let n = 0;
              for (let i = 0; i < 6; i++) if (await consume(at)) n++;
              return n;
            };
            // At T: 4 of 5 units taken (or all 5, and one given back while the clock is behind).
            await consume(T, via === "consume" ? 4 : 5);
            if (via === "consume") {
              // The clock 1 s behind: the unit left is taken.
              const last = await decide(T - BACK);
              if (!last.allowed) problems.push(`${algorithm}, ${what}, ${path}: the last unit refused`);
              if (isBucket(algorithm) && last.rules[0]?.resetMs !== BACK + 1_000) {
                problems.push(`${algorithm}, ${what}, ${path}: the last unit, ${JSON.stringify(last.rules[0])}`);
              }
              const stored = await admin.get(key);
              // A bucket's state stays as of T (5 units of 200 ticks, 1 tick per ms: full 1 s after T)
              if (isBucket(algorithm) && !stored?.includes(`r|${short(algorithm)}=${T + 1_000}:${T}:0:200`)) {
                problems.push(`${algorithm}, ${what}, ${path}: stored ${stored}`);
              }
            } else {
              await admin.evalsha(refundSha, 1, key, "1", rulesSpec(rules), ...timeOf(T - BACK));
              const n = await burst(T - BACK);
              if (n !== 1) problems.push(`${algorithm}, ${what}, ${path}, refund: ${n} admitted behind (1 given back)`);
            }
            // The clock back at T + 1 ms: 1 ms has passed since T, not a whole second.
            const peek = decisionFromReply(
              (await admin.evalsha(peekSha, 1, key, "1", rulesSpec(rules), ...timeOf(T + 1))) as never,
              rules,
            );
            const n = await burst(T + 1);
            if (n !== 0 || peek.rules[0]?.remaining !== 0) {
              problems.push(
                `${algorithm}, ${what}, ${path}, ${via}: ${n} more admitted 1 ms after T (peek: ${peek.rules[0]?.remaining} left); stored ${await admin.get(key)}`,
              );
            }
            if (isBucket(algorithm) && via === "consume") {
              // Behind again: the wait and the time until full count from T, and name the exact instants.
              const behind = await decide(T - BACK);
              const r = behind.rules[0];
              if (r?.retryAfterMs !== BACK + 200 || r.resetMs !== BACK + 1_000) {
                problems.push(`${algorithm}, ${what}, ${path}: behind, ${JSON.stringify(r)}`);
              }
              if (await consume(T + 199)) problems.push(`${algorithm}, ${what}, ${path}: admitted 1 ms early`);
              const d = await decide(T + 200);
              if (!d.allowed || d.rules[0]?.resetMs !== 1_000) {
                problems.push(`${algorithm}, ${what}, ${path}: at T + 200 ${JSON.stringify(d.rules[0])}`);
              }
            }
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });
});
