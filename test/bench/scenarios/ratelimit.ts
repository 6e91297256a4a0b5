import { RateLimiterRedis, RateLimiterUnion } from "rate-limiter-flexible";
import { coordisExports, type RateLimitModule, type RuleLike } from "../coordis.js";
import { type Scenario, type SetupContext, Unavailable } from "../types.js";
import { INCR_PEXPIRE_LUA, KEY_SPACE, loadScript } from "./raw.js";

const GROUP = "rate limit";
const BASELINE = "ratelimit/raw";
// Limits far above what a run can consume: every call is admitted, so the figure is the cost of a decision.
const LIMIT = 1_000_000_000;
const ALGORITHMS = ["fixed-window", "sliding-window", "token-bucket", "gcra"] as const;

const key = (n: number) => `user-${n % KEY_SPACE}`;

function rlf(ctx: SetupContext, keyPrefix: string, duration: number): RateLimiterRedis {
  return new RateLimiterRedis({
    storeClient: ctx.client(),
    keyPrefix: `${ctx.prefix}:${keyPrefix}`,
    points: LIMIT,
    duration,
  });
}

/**
 * Rules with a small limit for the memory measurement: with the 10⁹ limits of the throughput runs, token-bucket and
 * GCRA state expires within microseconds (a full bucket needs no state) and would measure as nothing.
 */
const memoryRules = (rules: RuleLike[]): RuleLike[] => rules.map((r) => ({ ...r, limit: 10 }));

function coordisLimiter(id: string, name: string, rules: RuleLike[], reference?: string): Scenario {
  return {
    id,
    group: GROUP,
    name,
    kind: "coordis",
    topology: "single",
    baseline: BASELINE,
    ...(reference === undefined ? {} : { reference }),
    roundTrips: 1,
    roundTripsNote: "one script checks every rule",
    memoryEntity: "key",
    async setup(ctx) {
      const { RateLimiter } = await coordisExports<RateLimitModule>("ratelimit", ["RateLimiter"]);
      const redis = ctx.client();
      const limiter = new RateLimiter(redis, { rules, prefix: ctx.prefix });
      const memLimiter = new RateLimiter(redis, { rules: memoryRules(rules), prefix: ctx.prefix });
      const consume = async (target: typeof limiter, k: string) => {
        const decision = await target.consume(k);
        if (!decision.allowed) throw new Error(`call rejected for ${k}`);
      };
      return { op: (n) => consume(limiter, key(n)), entity: (j) => consume(memLimiter, `mem-${j}`) };
    },
  };
}

/**
 * Micro-batched consume (`batch: true`): one limiter shared by every caller in flight (batching is per instance),
 * so the closed loop's 50 callers coalesce into one script call per event-loop turn. Round trips are counted at
 * 50 in flight and declared as a ceiling of 1.
 */
function batchedLimiter(id: string, name: string, rules: RuleLike[], reference: string): Scenario {
  return {
    id,
    group: GROUP,
    name,
    kind: "coordis",
    topology: "single",
    baseline: BASELINE,
    reference,
    roundTrips: 1,
    roundTripsBound: "at-most",
    roundTripConcurrency: "closed-loop",
    roundTripsNote: "calls in the same event-loop turn share one script call",
    async setup(ctx) {
      const { RateLimiter } = await coordisExports<RateLimitModule>("ratelimit", ["RateLimiter"]);
      const limiter = new RateLimiter(ctx.client(), { rules, prefix: ctx.prefix, batch: true });
      if ((limiter as { batch?: unknown }).batch === undefined) throw new Unavailable("RateLimiter has no batch mode");
      return {
        async op(n) {
          const decision = await limiter.consume(key(n));
          if (!decision.allowed) throw new Error(`call rejected for ${key(n)}`);
        },
      };
    },
  };
}

/** Rate limit: raw EVALSHA counter, rate-limiter-flexible (1 limiter, union of 3), Coordis per algorithm and 3 rules. */
export function rateLimitScenarios(): Scenario[] {
  return [
    {
      id: BASELINE,
      group: GROUP,
      name: "raw EVALSHA INCR+PEXPIRE",
      kind: "raw",
      topology: "single",
      memoryEntity: "key",
      async setup(ctx) {
        const redis = ctx.client();
        const sha = await loadScript(redis, INCR_PEXPIRE_LUA);
        return {
          op: (n) => redis.evalsha(sha, 1, `${ctx.prefix}:${key(n)}`, 60_000),
          entity: (j) => redis.evalsha(sha, 1, `${ctx.prefix}:mem-${j}`, 60_000),
        };
      },
    },
    {
      id: "ratelimit/rlf",
      group: GROUP,
      name: "rate-limiter-flexible RateLimiterRedis",
      kind: "peer",
      topology: "single",
      baseline: BASELINE,
      memoryEntity: "key",
      async setup(ctx) {
        const limiter = rlf(ctx, "one", 60);
        return { op: (n) => limiter.consume(key(n)), entity: (j) => limiter.consume(`mem-${j}`) };
      },
    },
    {
      id: "ratelimit/rlf-union3",
      group: GROUP,
      name: "rate-limiter-flexible RateLimiterUnion of 3",
      kind: "peer",
      topology: "single",
      baseline: BASELINE,
      reference: "ratelimit/rlf",
      memoryEntity: "key",
      async setup(ctx) {
        const union = new RateLimiterUnion(rlf(ctx, "a", 1), rlf(ctx, "b", 60), rlf(ctx, "c", 3600));
        return { op: (n) => union.consume(key(n)), entity: (j) => union.consume(`mem-${j}`) };
      },
    },
    ...ALGORITHMS.flatMap((algorithm) => {
      const row = coordisLimiter(
        `ratelimit/coordis-${algorithm}`,
        `Coordis RateLimiter 1 rule (${algorithm})`,
        [{ limit: LIMIT, windowMs: 60_000, algorithm }],
        "ratelimit/rlf",
      );
      if (algorithm !== "fixed-window") return [row];
      return [
        row,
        batchedLimiter(
          "ratelimit/coordis-fixed-window-batched",
          "Coordis RateLimiter 1 rule (fixed-window), batched",
          [{ limit: LIMIT, windowMs: 60_000, algorithm }],
          "ratelimit/coordis-fixed-window",
        ),
      ];
    }),
    coordisLimiter(
      "ratelimit/coordis-3-rules",
      "Coordis RateLimiter 3 rules (fixed 1 s + sliding 1 min + token bucket 1 h)",
      [
        { name: "second", limit: LIMIT, windowMs: 1_000, algorithm: "fixed-window" },
        { name: "minute", limit: LIMIT, windowMs: 60_000, algorithm: "sliding-window" },
        { name: "hour", limit: LIMIT, windowMs: 3_600_000, algorithm: "token-bucket" },
      ],
      "ratelimit/coordis-fixed-window",
    ),
  ];
}
