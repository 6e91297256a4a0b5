import { type Algorithm, type NormalizedRule, type Rule, ratelimitScripts } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { type Decision, decisionFromReply } from "../src/decision.js";
import { normalizeRules, rulesArgs, rulesSpec } from "../src/rules.js";
import { sharedClients } from "./fixtures/clients.js";
import { atTime } from "./fixtures/previous-release.js";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];

/** TIME's reply (seconds, microseconds) at instant `at` (ms), with some microseconds past the millisecond. */
const timeOf = (at: number): [string, string] => [
  String(Math.floor(at / 1000)),
  String((at % 1000) * 1000 + ((at * 7) % 1000)),
];

/**
 * The README's figures are instants, to the millisecond: `retryAfterMs` is the earliest time after which the same
 * call passes (max over rules), `resetMs` the time until a rule is full again. Random rule sets (one to three rules,
 * every algorithm, bursts), costs and instants, with the consume and peek scripts run at chosen server instants: after
 * each call, a copy of the stored state is asked again 1 ms before and at each announced instant.
 */
describe("retryAfterMs and resetMs name exact instants", () => {
  const clients = sharedClients();

  it("a rejected call passes at retryAfterMs and not 1 ms earlier; a rule is full at resetMs and not 1 ms earlier", async () => {
    const admin = clients.admin;
    const consumeSha = (await admin.script("LOAD", atTime(ratelimitScripts.consume.source))) as string;
    const peekSha = (await admin.script("LOAD", atTime(ratelimitScripts.peek.source))) as string;
    const [s] = (await admin.time()) as unknown as [string, string];
    const base = Number(s) * 1000 + 100 * 24 * 3_600_000; // ahead of the server: nothing written expires meanwhile
    const next = mulberry32(20261204);
    const problems: string[] = [];
    let checked = 0;
    for (let round = 0; round < 150; round++) {
      const given: Rule[] = Array.from({ length: 1 + Math.floor(next() * 3) }, (_, i) => {
        const algorithm = ALGS[Math.floor(next() * ALGS.length)] as Algorithm;
        const limit = 1 + Math.floor(next() * 8);
        const windowMs = [1_000, 3_000, 7_000, 60_000][Math.floor(next() * 4)] as number;
        const bucket = algorithm === "token-bucket" || algorithm === "gcra";
        const burst = bucket && next() < 0.3 ? 1 + Math.floor(next() * 10) : undefined;
        return { name: `r${i}`, algorithm, limit, windowMs, ...(burst === undefined ? {} : { burst }) };
      });
      const rules: readonly NormalizedRule[] = normalizeRules(given);
      const args = rulesArgs(rules);
      const spec = rulesSpec(rules);
      const maxCost = Math.min(...rules.map((r) => r.capacity));
      const key = `${prefix}:rl:{x${round}}`;
      const copy = `${prefix}:rl:{c${round}}`;
      /** A call on a copy of the key's state as it is now, at instant `at`. */
      const onCopy = async (at: number, state: string | null, script: string, argv: string[]): Promise<Decision> => {
        if (state === null) await admin.del(copy);
        else await admin.set(copy, state);
        return decisionFromReply((await admin.evalsha(script, 1, copy, ...argv, ...timeOf(at))) as never, rules);
      };
      let t = base + Math.floor(next() * 100_000);
      for (let step = 0; step < 25; step++) {
        const cost = 1 + Math.floor(next() * maxCost);
        const d = decisionFromReply(
          (await admin.evalsha(consumeSha, 1, key, String(cost), ...args, ...timeOf(t))) as never,
          rules,
        );
        const state = await admin.get(key);
        const what = `${JSON.stringify(given)} state ${state} at ${t}, cost ${cost}`;
        if (!d.allowed) {
          for (const [dt, passes] of [
            [d.retryAfterMs - 1, false],
            [d.retryAfterMs, true],
          ] as const) {
            const again = await onCopy(t + dt, state, consumeSha, [String(cost), ...args]);
            checked++;
            if (again.allowed !== passes)
              problems.push(`${what}: retryAfterMs ${d.retryAfterMs}, at +${dt} ${again.allowed}`);
          }
        }
        for (const [i, part] of d.rules.entries()) {
          if (part.resetMs === 0) continue;
          const rule = rules[i] as NormalizedRule;
          for (const [dt, full] of [
            [part.resetMs - 1, false],
            [part.resetMs, true],
          ] as const) {
            const later = (await onCopy(t + dt, state, peekSha, ["1", spec])).rules[i];
            checked++;
            const isFull = later?.resetMs === 0 && later.remaining === rule.capacity;
            if (isFull !== full)
              problems.push(`${what}: ${rule.name} resetMs ${part.resetMs}, at +${dt} ${JSON.stringify(later)}`);
          }
        }
        t += Math.floor(next() * ([10, 300, 2_000][Math.floor(next() * 3)] as number));
      }
      await admin.del(key, copy);
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(1_000);
  });
});
