import { InvalidArgumentError } from "@coordis/core";
import { RateLimiter, type RateLimiterOptions, type Rule } from "@coordis/ratelimit";
import { testPrefix, waitUntil } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { sharedClients } from "./fixtures/clients.js";

const prefix = testPrefix();
let n = 0;
const freshKey = () => `rc-${process.pid}-${++n}`;

/** Waits (polling the clock) until `at` (Date.now() ms) has passed: used to wait out a stored state's old expiry. */
const clockPassed = (at: number) =>
  waitUntil(`the clock to pass ${at}`, () => Date.now() >= at, at - Date.now() + 5_000);

describe("rate limits: rule changes, limiters sharing a key, deny cache, exact arithmetic", () => {
  const clients = sharedClients();
  const limiter = (rules: Rule[], extra: Partial<RateLimiterOptions> = {}) =>
    new RateLimiter(clients.redis, { rules, prefix, ...extra });
  const admitted = async (rl: RateLimiter, key: string, calls: number) => {
    let ok = 0;
    for (let i = 0; i < calls; i++) if ((await rl.consume(key)).allowed) ok++;
    return ok;
  };

  describe("a rule change keeps the state alive as long as the new rules need it", () => {
    it("fixed window 5/300 ms -> 5/60 s: the window carries over and is not handed back when the old one would end", async () => {
      const key = freshKey();
      const before = limiter([{ name: "w", limit: 5, windowMs: 300 }]);
      const after = limiter([{ name: "w", limit: 5, windowMs: 60_000 }]);
      const t0 = Date.now();
      expect(await admitted(before, key, 5)).toBe(5);
      const rejected = await after.consume(key);
      expect(rejected.allowed).toBe(false);
      expect(rejected.retryAfterMs).toBeGreaterThan(50_000);
      await clockPassed(t0 + 700); // the old rules' expiry has passed
      expect(await admitted(after, key, 5)).toBe(0);
      expect((await after.peek(key)).retryAfterMs).toBeGreaterThan(50_000);
    });

    it("an entry that expired under the old rules before any call under the new ones is gone, also while another rule's entry keeps the key", async () => {
      const serverNow = async () => {
        const [sec, usec] = (await clients.admin.time()) as [string | number, string | number];
        return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
      };
      const daily = { name: "daily", limit: 100, windowMs: 60_000 };
      const cases: Array<[string, Rule, Rule, number]> = [
        [
          "fixed window 5/300 ms -> 5/60 s",
          { name: "w", limit: 5, windowMs: 300 },
          { name: "w", limit: 5, windowMs: 60_000 },
          5,
        ],
        [
          "token bucket 5/2 s -> 5/h",
          { name: "b", limit: 5, windowMs: 2_000, algorithm: "token-bucket" },
          { name: "b", limit: 5, windowMs: 3_600_000, algorithm: "token-bucket" },
          5,
        ],
      ];
      for (const [what, old, changed, calls] of cases) {
        for (const batch of [false, true]) {
          const key = freshKey();
          const before = limiter([old, daily]);
          const after = limiter([changed, daily], { batch });
          expect(await admitted(before, key, calls), what).toBe(calls);
          // The old rule's entry, "<name>|<alg>=<expAtMs>:...": wait on Redis' clock until that instant has passed.
          const stored = String(await clients.admin.get(`${prefix}:rl:{${key}}`));
          const expAt = Number(new RegExp(`${old.name}\\|[a-z]+=(\\d+):`).exec(stored)?.[1]);
          expect(expAt, stored).toBeGreaterThan(0);
          await waitUntil(`Redis' clock to pass ${expAt}`, async () => (await serverNow()) > expAt, 10_000);
          const d = await after.consume(key);
          expect(d.allowed, `${what}, batch ${batch}`).toBe(true);
          expect(d.rules.find((r) => r.name === old.name)?.remaining, `${what}, batch ${batch}`).toBe(calls - 1);
        }
      }
    });

    it("token bucket 5/2 s -> 5/h: the empty bucket stays empty", async () => {
      // 5 per 2 s refills a token every 400 ms: the calls below must not see one refilled on a loaded machine (with
      // 5/300 ms, one every 60 ms, they sometimes did).
      const key = freshKey();
      const before = limiter([{ name: "b", limit: 5, windowMs: 2_000, algorithm: "token-bucket" }]);
      const after = limiter([{ name: "b", limit: 5, windowMs: 3_600_000, algorithm: "token-bucket" }]);
      expect(await admitted(before, key, 5)).toBe(5);
      const emptied = Date.now(); // the old rules' entry expires at most 2 s after the last call
      expect((await after.consume(key)).allowed).toBe(false);
      await clockPassed(emptied + 2_400);
      expect(await admitted(after, key, 5)).toBe(0);
    });

    it("gcra and token bucket with only the limit lowered (burst kept): the bucket refills at the new rate", async () => {
      for (const algorithm of ["token-bucket", "gcra"] as const) {
        const key = freshKey();
        const before = limiter([{ name: "b", limit: 10, burst: 10, windowMs: 300, algorithm }]);
        const after = limiter([{ name: "b", limit: 1, burst: 10, windowMs: 300, algorithm }]);
        const t0 = Date.now();
        expect(await before.consume(key, 10)).toMatchObject({ allowed: true });
        expect((await after.consume(key)).allowed).toBe(false);
        await clockPassed(t0 + 700); // the old rules would have refilled all 10 by now
        const ok = await admitted(after, key, 10);
        // one unit per 300 ms since the bucket was emptied (at or after t0)
        expect(ok, algorithm).toBeLessThanOrEqual(Math.floor((Date.now() - t0) / 300) + 1);
        expect(ok, algorithm).toBeLessThan(10);
      }
    });

    it("a rejected call under unchanged rules writes nothing; a rule change moves only the expiry", async () => {
      const key = freshKey();
      const stateKey = `${prefix}:rl:{${key}}`;
      const rl = limiter([{ name: "w", limit: 2, windowMs: 60_000 }]);
      await rl.consume(key, 2);
      const [value, expiry] = await Promise.all([clients.admin.get(stateKey), clients.admin.pexpiretime(stateKey)]);
      expect((await rl.consume(key)).allowed).toBe(false);
      expect(await clients.admin.get(stateKey)).toBe(value);
      expect(await clients.admin.pexpiretime(stateKey)).toBe(expiry);
      const longer = limiter([{ name: "w", limit: 2, windowMs: 120_000 }]);
      expect((await longer.consume(key)).allowed).toBe(false);
      const [value2, expiry2] = await Promise.all([clients.admin.get(stateKey), clients.admin.pexpiretime(stateKey)]);
      expect(expiry2).toBe(expiry + 60_000);
      // the state itself is unchanged, only the entry's expiry moved with the key's
      expect((value2 as string).replace(/=\d+:/, "=")).toBe((value as string).replace(/=\d+:/, "="));
      expect(value2).toContain(`=${expiry2}:`);
    });
  });

  describe("several limiters on one key", () => {
    it("a login limiter and an API limiter on the same key each hold their own bound", async () => {
      const key = freshKey();
      const login = limiter([{ name: "login", limit: 3, windowMs: 15 * 60_000 }]);
      const api = limiter([{ name: "api", limit: 100, windowMs: 60_000 }]);
      let logins = 0;
      let calls = 0;
      for (let i = 0; i < 20; i++) {
        if ((await login.consume(key)).allowed) logins++;
        if ((await api.consume(key)).allowed) calls++;
      }
      expect(logins).toBe(3);
      expect(calls).toBe(20);
      expect((await api.peek(key)).remaining).toBe(80);
    });

    it("a rolling deploy that adds a rule: old and new replicas alternating keep the new rule's bound", async () => {
      const key = freshKey();
      const a: Rule = { name: "a", limit: 100, windowMs: 60_000 };
      const oldReplica = limiter([a]);
      const newReplica = limiter([a, { name: "b", limit: 3, windowMs: 60_000, algorithm: "sliding-window" }]);
      let byNew = 0;
      let total = 0;
      for (let i = 0; i < 20; i++) {
        if ((await oldReplica.consume(key)).allowed) total++;
        const d = await newReplica.consume(key);
        if (d.allowed) {
          byNew++;
          total++;
        }
      }
      expect(byNew).toBe(3);
      expect(100 - (await oldReplica.peek(key)).remaining).toBe(total);
    });

    it("unnamed rules get names derived from the rule, so different unnamed rules never share a counter", async () => {
      const key = freshKey();
      const strict = limiter([{ limit: 3, windowMs: 60_000 }]);
      const loose = limiter([{ limit: 100, windowMs: 60_000 }]);
      expect(strict.rules[0]?.name).toBe("fw-3-per-60000ms");
      expect(loose.rules[0]?.name).toBe("fw-100-per-60000ms");
      expect(limiter([{ limit: 5, windowMs: 1_000, algorithm: "gcra", burst: 9 }]).rules[0]?.name).toBe(
        "gcra-5-per-1000ms-burst-9",
      );
      expect(await admitted(loose, key, 10)).toBe(10);
      expect(await admitted(strict, key, 5)).toBe(3);
      expect((await loose.peek(key)).remaining).toBe(90);
      // the same unnamed rule in two limiters is the same rule: one counter
      expect(await admitted(limiter([{ limit: 3, windowMs: 60_000 }]), key, 1)).toBe(0);
    });

    it("reset forgets only the resetting limiter's rules", async () => {
      const key = freshKey();
      const login = limiter([{ name: "login", limit: 3, windowMs: 15 * 60_000 }]);
      const api = limiter([{ name: "api", limit: 5, windowMs: 60_000 }]);
      expect(await admitted(login, key, 3)).toBe(3);
      expect(await admitted(api, key, 5)).toBe(5);
      await api.reset(key);
      expect((await api.peek(key)).remaining).toBe(5);
      expect((await login.consume(key)).allowed).toBe(false);
      await login.reset(key);
      expect(await clients.admin.exists(`${prefix}:rl:{${key}}`)).toBe(0);
    });

    it("another limiter's entry is kept until its own expiry, then dropped; the key lives as long as its latest entry", async () => {
      const key = freshKey();
      const stateKey = `${prefix}:rl:{${key}}`;
      const short = limiter([{ name: "short", limit: 5, windowMs: 400 }]);
      const long = limiter([{ name: "long", limit: 5, windowMs: 60_000 }]);
      const t0 = Date.now();
      await short.consume(key);
      await long.consume(key);
      expect(await clients.admin.get(stateKey)).toMatch(/short\|fw=/);
      const expiry = await clients.admin.pexpiretime(stateKey);
      await short.consume(key); // the short entry's write keeps the long entry and the key's expiry
      expect(await clients.admin.pexpiretime(stateKey)).toBe(expiry);
      expect(await clients.admin.get(stateKey)).toMatch(/long\|fw=\d+:\d+:1/);
      await clockPassed(t0 + 800);
      await long.consume(key);
      const value = (await clients.admin.get(stateKey)) as string;
      expect(value).not.toContain("short|fw");
      expect(value).toMatch(/^long\|fw=\d+:\d+:2$/);
    });
  });

  describe("the deny cache never outlives a refund or reset issued after the rejected call", () => {
    for (const batch of [false, true]) {
      it(`refund racing a consume (${batch ? "batched" : "unbatched"})`, async () => {
        const key = freshKey();
        const rl = limiter([{ name: "r", limit: 1, windowMs: 60_000 }], { denyCache: true, batch });
        expect((await rl.consume(key)).allowed).toBe(true);
        const [raced] = await Promise.all([rl.consume(key), rl.refund(key, 1)]);
        expect(raced.allowed).toBe(false); // Redis ran it before the refund
        const peek = await rl.peek(key);
        expect(peek).toMatchObject({ allowed: true, remaining: 1 });
        expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "redis" });
      });

      it(`reset racing a consume (${batch ? "batched" : "unbatched"})`, async () => {
        const key = freshKey();
        const rl = limiter([{ name: "r", limit: 1, windowMs: 60_000 }], { denyCache: true, batch });
        expect((await rl.consume(key)).allowed).toBe(true);
        const [raced] = await Promise.all([rl.consume(key), rl.reset(key)]);
        expect(raced.allowed).toBe(false);
        expect(await rl.consume(key)).toMatchObject({ allowed: true, reason: "redis" });
      });
    }

    it("a rejection issued after the refund is still cached", async () => {
      const key = freshKey();
      const rl = limiter([{ name: "r", limit: 1, windowMs: 60_000 }], { denyCache: true });
      await rl.consume(key);
      await rl.refund(key, 1);
      await rl.consume(key);
      expect((await rl.consume(key)).reason).toBe("redis");
      expect((await rl.consume(key)).reason).toBe("deny-cache");
    });
  });

  describe("exact integer arithmetic", () => {
    it("gcra and token bucket report exact remaining and reset on fresh and full keys", async () => {
      const configs: Array<Pick<Rule, "limit" | "windowMs" | "burst">> = [
        { limit: 30, windowMs: 1_000 },
        { limit: 30, windowMs: 1_000, burst: 7 },
        { limit: 10, windowMs: 1_000, burst: 7 },
        { limit: 3, windowMs: 1_000, burst: 7 },
        { limit: 1_000, windowMs: 3_600_000, burst: 9 },
      ];
      for (const algorithm of ["gcra", "token-bucket"] as const) {
        for (const c of configs) {
          const cap = c.burst ?? c.limit;
          const rl = limiter([{ name: "x", algorithm, ...c }]);
          const what = `${algorithm} ${JSON.stringify(c)}`;
          for (let cost = 1; cost <= Math.min(cap, 8); cost++) {
            const key = freshKey();
            expect((await rl.peek(key)).remaining, `${what} fresh`).toBe(cap);
            const d = await rl.consume(key, cost);
            expect(d.remaining, `${what} after ${cost}`).toBe(cap - cost);
            expect(d.resetMs, `${what} after ${cost}`).toBe(Math.ceil((cost * c.windowMs) / c.limit));
            // full again (the refund cannot overfill): every unit is back
            expect((await rl.refund(key, cost)).remaining, `${what} refunded ${cost}`).toBe(cap);
          }
        }
      }
    });

    it("token bucket retryAfterMs is exact (1 per hour: 3 600 000 ms, not one more)", async () => {
      for (const algorithm of ["token-bucket", "gcra"] as const) {
        const rl = limiter([{ name: "h", limit: 1, windowMs: 3_600_000, algorithm }], { batch: true });
        const key = freshKey();
        const [a, b] = await Promise.all([rl.consume(key), rl.consume(key)]); // one batch: one server time
        expect(a.allowed).toBe(true);
        expect(a.resetMs).toBe(3_600_000);
        expect(b.allowed).toBe(false);
        expect(b.retryAfterMs, algorithm).toBe(3_600_000);
      }
    });

    it("huge burst/limit ratios: valid ones work (integer PXAT), unsafe ones are refused up front", async () => {
      const year = 365 * 86_400_000;
      for (const algorithm of ["token-bucket", "gcra"] as const) {
        const rl = limiter([{ name: "big", limit: 1, windowMs: year, burst: 285_000, algorithm }]);
        const key = freshKey();
        const d = await rl.consume(key, 10);
        expect(d).toMatchObject({ allowed: true, remaining: 284_990 });
        expect(d.resetMs).toBe(10 * year);
        const expiry = await clients.admin.pexpiretime(`${prefix}:rl:{${key}}`);
        expect(expiry).toBeGreaterThan(Date.now() + 10 * year - 60_000);
        const drained = await rl.consume(freshKey(), 285_000); // empty: refills in 285 000 years
        expect(drained).toMatchObject({ allowed: true, remaining: 0, resetMs: 285_000 * year });
        expect(() => limiter([{ name: "big", limit: 1, windowMs: year, burst: 300_000, algorithm }])).toThrow(
          expect.objectContaining({ argument: "options.rules[0].burst" }),
        );
        expect(() => limiter([{ name: "big", limit: 999_999_937, windowMs: year, algorithm }])).toThrow(
          InvalidArgumentError,
        );
      }
    });
  });
});
