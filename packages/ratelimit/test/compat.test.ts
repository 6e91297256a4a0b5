import { runScript } from "@coordis/core";
import { type Algorithm, RateLimiter, type Rule } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { sharedClients } from "./fixtures/clients.js";
import { previousArgs } from "./fixtures/previous-release.js";
import { previousScripts } from "./fixtures/previous-scripts.js";

const prefix = testPrefix();
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];
const SHORT: Record<Algorithm, string> = {
  "fixed-window": "fw",
  "sliding-window": "sw",
  "token-bucket": "tb",
  gcra: "gcra",
};
const MONTH = 30 * 24 * 3_600_000;
/** Ms two calls made one after the other may be apart: stored instants and bucket levels may differ by that much. */
const SLACK_MS = 250;

/**
 * Rolling upgrade: replicas of the previous release (its consume script, in the fixture) and of this one count on the
 * same keys. Each release must read the entries the other wrote and write entries the other reads: a key consumed
 * alternately by both ends every step with the same decision and the same stored entries as a key consumed by this
 * release alone.
 */
describe("rate-limit state across releases (rolling upgrade)", () => {
  const clients = sharedClients();
  const stateKey = (key: string) => `${prefix}:rl:{${key}}`;

  /** The stored entries of a key as field -> numbers. */
  const entries = async (key: string): Promise<Map<string, number[]>> => {
    const value = (await clients.admin.get(stateKey(key))) ?? "";
    const out = new Map<string, number[]>();
    for (const e of value.split(";").filter((x) => x !== "")) {
      const eq = e.indexOf("=");
      out.set(
        e.slice(0, eq),
        e
          .slice(eq + 1)
          .split(":")
          .map(Number),
      );
    }
    return out;
  };
  const close = (a: number, b: number) => Math.abs(a - b) <= SLACK_MS;

  const compare = async (name: string, rules: Rule[], costs: number[]) => {
    const rl = new RateLimiter(clients.redis, { rules, prefix });
    const mixedKey = `compat-${name}-${process.pid}-mixed`;
    const newKey = `compat-${name}-${process.pid}-new`;
    await clients.admin.del(stateKey(mixedKey), stateKey(newKey));
    const bucketFields = new Set(
      rl.rules.filter((r) => r.algorithm === "token-bucket" || r.algorithm === "gcra").map((r) => `${r.name}|`),
    );
    for (const [i, cost] of costs.entries()) {
      const step = `${name} step ${i} (cost ${cost}, ${i % 2 === 0 ? "previous" : "this"} release on the mixed key)`;
      let mixed: { allowed: boolean; remaining: number[] };
      if (i % 2 === 0) {
        const reply = (await runScript(clients.redis, previousScripts.consume, [stateKey(mixedKey)], [
          cost,
          ...previousArgs(rl.rules),
        ] as unknown as [number, string])) as number[];
        mixed = { allowed: reply[0] === 1, remaining: rl.rules.map((_, j) => reply[2 + 3 * j] as number) };
      } else {
        const d = await rl.consume(mixedKey, cost);
        mixed = { allowed: d.allowed, remaining: d.rules.map((r) => r.remaining) };
      }
      const d = await rl.consume(newKey, cost);
      expect(mixed, step).toEqual({ allowed: d.allowed, remaining: d.rules.map((r) => r.remaining) });
      const [a, b] = await Promise.all([entries(mixedKey), entries(newKey)]);
      expect([...a.keys()], step).toEqual([...b.keys()]);
      for (const [field, x] of a) {
        const y = b.get(field) as number[];
        expect(x.length, `${step}, ${field}`).toBe(y.length);
        const bucket = [...bucketFields].some((f) => field.startsWith(f));
        for (const [j, v] of x.entries()) {
          const w = y[j] as number;
          // instants and bucket levels within the slack, counts and units exact
          if (v > 1e12 || (bucket && j === 2)) expect(close(v, w), `${step}, ${field}[${j}]: ${v} vs ${w}`).toBe(true);
          else expect(v, `${step}, ${field}[${j}]`).toBe(w);
        }
      }
    }
  };

  it.each(ALGS)("one rule, %s: each release counts on the other's entry", async (algorithm) => {
    // 10 per month: 3 + 2 + 4 admitted, then 2 rejected, 1 admitted, 1 rejected
    await compare(SHORT[algorithm], [{ name: "r", limit: 10, windowMs: MONTH, algorithm }], [3, 2, 4, 2, 1, 1, 1]);
  });

  it("three rules (fixed window, sliding window, token bucket with a burst)", async () => {
    const rules: Rule[] = [
      { name: "a", limit: 8, windowMs: MONTH },
      { name: "b", limit: 12, windowMs: MONTH, algorithm: "sliding-window" },
      { name: "c", limit: 6, windowMs: MONTH, algorithm: "token-bucket", burst: 9 },
    ];
    await compare("three", rules, [2, 3, 1, 2, 1, 3, 1, 1]);
  });
});
