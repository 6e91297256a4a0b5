import { InvalidArgumentError } from "@coordis/core";
import { type Decision, RateLimiter, toHeaders } from "@coordis/ratelimit";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { sharedClients } from "./fixtures/clients.js";

const prefix = testPrefix("rl-headers-input");

// toHeaders checks the decision it renders: a field it writes into a header that is not what a Decision holds (a
// rule name that is not one of the rules, a NaN, a string) is an InvalidArgumentError naming it, never a header
// with "NaN", a quote that reopens the structured field, or a line break.
describe("toHeaders: the fields it writes are checked", () => {
  const clients = sharedClients();

  it("a rule name outside the rules, or a bad remaining / resetMs of the deciding rule, is an InvalidArgumentError", async () => {
    const rl = new RateLimiter(clients.redis, {
      rules: [
        { name: "a", limit: 5, windowMs: 1_000 },
        { name: "b", limit: 50, windowMs: 60_000 },
      ],
      prefix,
    });
    const d = await rl.consume(`h-${process.pid}`);
    expect(d).toMatchObject({ allowed: true, rule: "a" });
    expect(toHeaders(d, rl.rules).RateLimit).toBe('"a";r=4;t=1');
    const first = d.rules[0] as Decision["rules"][number];
    const cases: Array<[string, Decision]> = [
      ["decision.rule", { ...d, rule: 'a";r=999;t=0, "b' }],
      ["decision.rule", { ...d, rule: "c" }],
      ["decision.rules[0].resetMs", { ...d, rules: [{ ...first, resetMs: Number.NaN }, ...d.rules.slice(1)] }],
      [
        "decision.rules[0].remaining",
        { ...d, rules: [{ ...first, remaining: "4\r\nX: y" as never }, ...d.rules.slice(1)] },
      ],
      [
        "decision.rules[0].remaining",
        { ...d, rules: [{ ...first, remaining: Number.POSITIVE_INFINITY }, ...d.rules.slice(1)] },
      ],
    ];
    for (const [argument, bad] of cases) {
      let thrown: unknown;
      try {
        toHeaders(bad, rl.rules);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `${argument}: ${JSON.stringify(bad.rule)}`).toBeInstanceOf(InvalidArgumentError);
      expect((thrown as InvalidArgumentError).argument).toBe(argument);
    }
  });
});
