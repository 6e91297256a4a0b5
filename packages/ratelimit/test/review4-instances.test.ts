import { connect, type RedisClient } from "@coordis/core";
import { type Algorithm, RateLimiter, type RateLimiterOptions, type Rule } from "@coordis/ratelimit";
import { mulberry32, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// Several limiter instances (as replicas would run them: each on its own connection, with its own batching settings)
// hitting one key at once. Windows of a year: the few seconds a run takes refill nothing that counts.
const prefix = testPrefix();
const YEAR = 365 * 24 * 3_600_000;
const ALGS: Algorithm[] = ["fixed-window", "sliding-window", "token-bucket", "gcra"];
const isBucket = (a: Algorithm) => a === "token-bucket" || a === "gcra";

type Opts = Omit<RateLimiterOptions, "rules" | "prefix">;

/** Batching settings of the instances: unbatched, small batches, batches that wait for company, a deny cache. */
const SETTINGS: Opts[] = [
  {},
  { batch: { maxSize: 3 } },
  { batch: { maxSize: 32, maxDelayMs: 2 } },
  { denyCache: true },
];

describe("several limiter instances on one key, at once", () => {
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    for (let i = 0; i < SETTINGS.length; i++) clients.push(connect(inject("coordisRedisUrl")));
    await Promise.all(clients.map((c) => c.ping()));
  });
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  /**
   * `callers` concurrent callers per limiter, each consuming `calls` times with the costs `costOf` gives (a refund of
   * the same cost follows an admitted call when `refundIf` says so); per limiter: units admitted, units refunded.
   */
  async function traffic(
    limiters: RateLimiter[],
    key: string,
    costOf: (limiter: number) => number,
    refundIf: () => boolean = () => false,
    callers = 25,
    calls = 4,
  ): Promise<{ admitted: number[]; refunded: number[] }> {
    const admitted = limiters.map(() => 0);
    const refunded = limiters.map(() => 0);
    await Promise.all(
      limiters.flatMap((rl, l) =>
        Array.from({ length: callers }, async () => {
          for (let i = 0; i < calls; i++) {
            const cost = costOf(l);
            const d = await rl.consume(key, cost);
            expect(d.remaining).toBeGreaterThanOrEqual(0);
            if (!d.allowed) continue;
            admitted[l] = (admitted[l] as number) + cost;
            if (refundIf()) {
              await rl.refund(key, cost);
              refunded[l] = (refunded[l] as number) + cost;
            }
          }
        }),
      ),
    );
    return { admitted, refunded };
  }

  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

  it("instances with different batching settings admit exactly the limit together, whatever the costs (every algorithm)", async () => {
    const random = mulberry32(0x5eed);
    for (const algorithm of ALGS) {
      for (const [label, costs] of [
        ["cost 1", [1]],
        ["costs 1 to 3", [1, 2, 3]],
        ["costs of the whole capacity", [40]],
      ] as const) {
        const rule: Rule = { name: "x", limit: 40, windowMs: YEAR, algorithm };
        const limiters = SETTINGS.map(
          (o, i) => new RateLimiter(clients[i] as RedisClient, { ...o, prefix, rules: [rule] }),
        );
        const key = `inst-${algorithm}-${label}`;
        const { admitted } = await traffic(limiters, key, () => costs[Math.floor(random() * costs.length)] as number);
        const peek = await (limiters[0] as RateLimiter).peek(key);
        // never more than the limit; what is left is exactly what was not admitted
        expect(sum(admitted), `${algorithm}, ${label}`).toBeLessThanOrEqual(40);
        expect(peek.remaining, `${algorithm}, ${label}: ${admitted}`).toBe(40 - sum(admitted));
        // every caller was turned away only once what was left could not take its cost
        if (costs.length === 1 && costs[0] === 1) expect(sum(admitted)).toBe(40);
        if (costs[0] === 40) expect(sum(admitted)).toBe(40);
      }
    }
  });

  it("refunds racing consumes across instances: what is left is exactly the limit less the units kept", async () => {
    const random = mulberry32(0xbeef);
    for (const algorithm of ALGS) {
      const rules: Rule[] = [
        { name: "a", limit: 30, windowMs: YEAR, algorithm },
        { name: "b", limit: 50, windowMs: YEAR, algorithm: algorithm === "gcra" ? "fixed-window" : "gcra" },
      ];
      const limiters = SETTINGS.map((o, i) => new RateLimiter(clients[i] as RedisClient, { ...o, prefix, rules }));
      const key = `race-${algorithm}`;
      const { admitted, refunded } = await traffic(
        limiters,
        key,
        () => 1 + Math.floor(random() * 3),
        () => random() < 0.4,
        20,
        6,
      );
      const kept = sum(admitted) - sum(refunded);
      const peek = await (limiters[1] as RateLimiter).peek(key);
      expect(kept, algorithm).toBeLessThanOrEqual(30);
      expect(
        peek.rules.map((r) => r.remaining),
        `${algorithm}: ${admitted} admitted, ${refunded} refunded`,
      ).toEqual([30 - kept, 50 - kept]);
      expect(sum(refunded), algorithm).toBeGreaterThan(0);
    }
  });

  describe("a rule change while old and new instances both take traffic", () => {
    type Change = { what: string; old: Rule[]; next: Rule[] };
    const changes = (algorithm: Algorithm): Change[] => {
      const r = (o: Partial<Rule> = {}): Rule => ({ name: "r", limit: 20, windowMs: YEAR, algorithm, ...o });
      const list: Change[] = [
        { what: "limit lowered", old: [r()], next: [r({ limit: 8 })] },
        { what: "limit raised", old: [r({ limit: 8 })], next: [r()] },
        { what: "window halved", old: [r()], next: [r({ windowMs: YEAR / 2 })] },
        { what: "rule renamed", old: [r()], next: [r({ name: "r2" })] },
        { what: "rule added", old: [r()], next: [r(), { name: "n", limit: 6, windowMs: YEAR, algorithm }] },
        { what: "rule removed", old: [r(), { name: "n", limit: 6, windowMs: YEAR, algorithm }], next: [r()] },
      ];
      if (isBucket(algorithm)) {
        list.push({ what: "burst lowered", old: [r({ burst: 20 })], next: [r({ burst: 8 })] });
        list.push({ what: "burst raised", old: [r({ burst: 8 })], next: [r({ burst: 20 })] });
      }
      // a sliding window whose window changes starts fresh (documented): not a carried-over state
      if (algorithm === "sliding-window") return list.filter((c) => c.what !== "window halved");
      return list;
    };

    for (const algorithm of ALGS) {
      it(`${algorithm}: each version's bound holds for the rules it shares, and the shared count never passes the larger limit`, async () => {
        const random = mulberry32(algorithm.length * 7919);
        for (const change of changes(algorithm)) {
          const key = `change-${algorithm}-${change.what}`;
          // two old and two new instances, with different batching settings
          const limiters = SETTINGS.map(
            (o, i) =>
              new RateLimiter(clients[i] as RedisClient, {
                ...o,
                prefix,
                rules: i % 2 === 0 ? change.old : change.next,
              }),
          );
          const rulesOf = (l: number) => (l % 2 === 0 ? change.old : change.next);
          const capOf = (rule: Rule) => rule.burst ?? rule.limit;
          const costOf = (l: number) => Math.min(1 + Math.floor(random() * 2), ...rulesOf(l).map(capOf));
          const { admitted } = await traffic(limiters, key, costOf, () => false, 15, 4);
          const [a0 = 0, a1 = 0, a2 = 0, a3 = 0] = admitted;
          const byOld = a0 + a2;
          const byNew = a1 + a3;
          const what = `${algorithm}, ${change.what}: old admitted ${byOld}, new ${byNew}`;
          // A rule name (and algorithm) counts every call of the versions that have it, each version admitting only
          // within its own figures: no version admits past its own capacity of any rule it has.
          for (const rule of [...change.old, ...change.next]) {
            const inOld = change.old.find((x) => x.name === rule.name);
            const inNew = change.next.find((x) => x.name === rule.name);
            const counted = (inOld ? byOld : 0) + (inNew ? byNew : 0);
            const largest = Math.max(inOld ? capOf(inOld) : 0, inNew ? capOf(inNew) : 0);
            expect(counted, `${what}; rule ${rule.name}`).toBeLessThanOrEqual(largest);
            if (inOld) expect(byOld, `${what}; old, rule ${rule.name}`).toBeLessThanOrEqual(capOf(inOld));
            if (inNew) expect(byNew, `${what}; new, rule ${rule.name}`).toBeLessThanOrEqual(capOf(inNew));
          }
          // Afterwards the new rules alone: they admit nothing beyond their own figures on what was counted.
          const next = new RateLimiter(clients[0] as RedisClient, { prefix, rules: change.next });
          let more = 0;
          while ((await next.consume(key)).allowed) more++;
          for (const rule of change.next) {
            const inOld = change.old.find((x) => x.name === rule.name);
            const counted = (inOld ? byOld : 0) + byNew;
            expect(more, `${what}; then ${more} more under the new rules`).toBeLessThanOrEqual(
              Math.max(0, capOf(rule) - counted),
            );
          }
        }
      });
    }
  });
});
