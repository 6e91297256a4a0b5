import { type BatchOptions, type CoordisObserver, InvalidArgumentError, type RedisClient } from "@coordis/core";
import { type Decision, RateLimiter, type Rule } from "@coordis/ratelimit";
import type { PluginSettings } from "./options.js";

/** Distinct rule sets a rules function may produce before it is an error (a limiter is cached per set). */
const MAX_DYNAMIC_RULE_SETS = 256;

/** The limiter of one rule set (micro-batched unless `batch: false`) and its policy header. */
export interface RuleSetLimiter {
  readonly limiter: RateLimiter;
  /** `"<name>";q=<limit>;w=<s>, ...`, computed once. */
  readonly policy: string;
  /** The most units one call may take: the smallest rule capacity. */
  readonly maxCost: number;
}

/** The keys a rule may have (anything else is refused where its limiter is made). */
const RULE_KEYS = new Set(["name", "limit", "windowMs", "algorithm", "burst", "capacity"]);

/**
 * A rule set's identity: two arrays of the same rules share one limiter (and one budget state). Defaults are filled
 * in, so a rule that spells one out (`algorithm: "fixed-window"`, a token bucket's or GCRA's `burst` equal to its
 * `limit`) is the same rule as one that leaves it out; an unnamed rule with an explicit `burst` has another default
 * name, so it stays another rule (null and 0 stand for the two kinds of unnamed rule: no name is either). A value
 * that is no valid-looking rule (not an object, another key, a window rule's burst, a wrong capacity) is kept as it is: its own
 * limiter is made for it, which refuses it.
 */
export function specOf(rules: readonly Rule[]): string {
  return JSON.stringify(
    rules.map((r) => {
      if (r === null || typeof r !== "object" || Object.keys(r).some((k) => !RULE_KEYS.has(k))) return r;
      const algorithm = r.algorithm ?? "fixed-window";
      const bucket = algorithm === "token-bucket" || algorithm === "gcra";
      if (!bucket && r.burst !== undefined) return r;
      // A limiter's own normalized rules carry their capacity; any other capacity is refused.
      const capacity = (r as Rule & { capacity?: unknown }).capacity;
      if (capacity !== undefined && capacity !== (r.burst ?? r.limit)) return r;
      return [r.name ?? (r.burst === undefined ? null : 0), r.limit, r.windowMs, algorithm, r.burst ?? r.limit];
    }),
  );
}

/**
 * The plugin's limiters, one per distinct rule set, created with the plugin's prefix, observer, failure
 * policy and batching (`"auto"` and `true`: every call goes through the batched limiter, which sends a call alone in
 * its event-loop turn as the plain consume script; `false`: through the unbatched one).
 */
export class Limiters {
  readonly #redis: RedisClient;
  readonly #settings: PluginSettings;
  readonly #observer: CoordisObserver | undefined;
  readonly #bySpec = new Map<string, RuleSetLimiter>();
  /** Rule sets first made for what a rules function returned (static routes' and bans' do not count). */
  #dynamicSets = 0;
  /** Rules functions' results -> their limiters, by array identity (the usual constant arrays). */
  readonly #dynamic = new WeakMap<object, RuleSetLimiter>();
  /** `<ban>/<windowMs>` -> the limiter counting a route's 429 answers per key. */
  readonly #bans = new Map<string, RuleSetLimiter>();

  /** `observer` is given to the limiters; `undefined` when nobody listens, so no event is built per request. */
  constructor(redis: RedisClient, settings: PluginSettings, observer: CoordisObserver | undefined) {
    this.#redis = redis;
    this.#settings = settings;
    this.#observer = observer;
  }

  /** The limiter of a rule set (created once). @throws InvalidArgumentError for bad rules */
  limiterOf(rules: readonly Rule[]): RuleSetLimiter {
    const spec = specOf(rules);
    let pair = this.#bySpec.get(spec);
    if (pair === undefined) {
      const mode = this.#settings.batch;
      const limiter = this.#make(rules, mode === "auto" ? true : mode);
      const policy = limiter.rules.map((r) => `"${r.name}";q=${r.limit};w=${Math.ceil(r.windowMs / 1000)}`).join(", ");
      pair = { limiter, policy, maxCost: Math.min(...limiter.rules.map((r) => r.capacity)) };
      this.#bySpec.set(spec, pair);
    }
    return pair;
  }

  /**
   * The limiter of what a route's rules function returned (`route` names it in errors).
   * @throws InvalidArgumentError when it is no array, has bad rules, or is one rule set too many
   */
  dynamicLimiterOf(route: string, rules: unknown): RuleSetLimiter {
    if (rules !== null && typeof rules === "object") {
      const known = this.#dynamic.get(rules);
      if (known !== undefined) return known;
    }
    if (!Array.isArray(rules))
      throw new InvalidArgumentError("rules", `the rules function of ${route} returned no array`);
    const isNew = !this.#bySpec.has(specOf(rules));
    if (isNew && this.#dynamicSets >= MAX_DYNAMIC_RULE_SETS) {
      throw new InvalidArgumentError(
        "rules",
        `more than ${MAX_DYNAMIC_RULE_SETS} distinct rule sets; reuse constant arrays`,
      );
    }
    // Counted once its limiter exists: a set with bad rules (which throws here, and is not cached) takes no slot.
    const pair = this.limiterOf(rules);
    if (isNew) this.#dynamicSets++;
    this.#dynamic.set(rules, pair);
    return pair;
  }

  /** The limiter counting rejections for `ban` (after `ban` 429s within the longest window of `pair`'s rules). */
  banLimiterOf(ban: number, pair: RuleSetLimiter): RuleSetLimiter {
    const windowMs = Math.max(...pair.limiter.rules.map((r) => r.windowMs));
    const id = `${ban}/${windowMs}`;
    let p = this.#bans.get(id);
    if (p === undefined) {
      p = this.limiterOf([{ name: "ban", limit: ban, windowMs }]);
      this.#bans.set(id, p);
    }
    return p;
  }

  /** Consumes through the rule set's limiter. */
  consume(pair: RuleSetLimiter, key: string, cost: number): Promise<Decision> {
    return pair.limiter.consume(key, cost);
  }

  #make(rules: readonly Rule[], batch: boolean | BatchOptions): RateLimiter {
    return new RateLimiter(this.#redis, {
      ...this.#settings.limiterOptions,
      ...(this.#observer === undefined ? {} : { observer: this.#observer }),
      rules: rules as Rule[],
      batch,
    });
  }
}
