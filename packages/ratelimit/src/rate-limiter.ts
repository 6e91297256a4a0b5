import {
  Batcher,
  type BatchOptions,
  type BatchOutcome,
  batchSettings,
  type CoordisObserver,
  DEFAULT_PREFIX,
  entityKeys,
  InvalidArgumentError,
  isCluster,
  notifyOperation,
  type RedisClient,
  RedisUnavailableError,
  runScript,
  runScriptDynamic,
  ScriptError,
  slotOf,
  validate,
  validateName,
  validatePrefix,
} from "@coordis/core";
import { type Decision, decisionFromReply, makeDecision, type RuleDecision } from "./decision.js";
import { DenyCache } from "./deny-cache.js";
import { MemoryLimiter } from "./memory-limiter.js";
import { type NormalizedRule, normalizeRules, type Rule, rulesArgs, rulesSpec } from "./rules.js";
import { ratelimitScripts } from "./scripts.generated.js";

/**
 * What a {@link RateLimiter} does when Redis is unavailable (`RedisUnavailableError`: refused, timed out...):
 * - `"throw"` (default): the call rejects with `RedisUnavailableError`.
 * - `"fail-open"`: admit the call (`reason: "fail-open"`); nothing is counted.
 * - `"fail-closed"`: reject the call (`reason: "fail-closed"`, `retryAfterMs` = `failClosedRetryAfterMs`).
 * - `{ fallback: "memory" }`: decide with an in-process limiter of the same rules (`reason: "fallback"`); its
 *   counts are per process and start empty, so N replicas admit up to N × the limit during the outage.
 *
 * Script errors (`ScriptError`: a wrong type at the key, a missing permission) always reject: they are bugs, not
 * outages.
 */
export type RedisErrorPolicy = "throw" | "fail-open" | "fail-closed" | { fallback: "memory"; maxKeys?: number };

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** The limits every key is held to, all checked atomically per call. */
  rules: Rule[];
  /** Key prefix (default `"coordis"`); keys are `<prefix>:rl:{<key>}`. */
  prefix?: string;
  /** Receives one operation event per call (see the README's "Observability"). */
  observer?: CoordisObserver;
  /** Failure policy, default `"throw"`. */
  onRedisError?: RedisErrorPolicy;
  /**
   * After a policy decided because Redis failed, keep deciding locally for this many ms before trying Redis
   * again, so an outage costs one command timeout per interval rather than per call. Default 1000; 0 disables.
   */
  redisRetryMs?: number;
  /** `retryAfterMs` of a fail-closed decision. Default 1000. */
  failClosedRetryAfterMs?: number;
  /**
   * Local deny cache (off by default): after a rejection, calls for the same key (of at least the rejected cost)
   * are rejected locally until `retryAfterMs` has passed, without a Redis call (`reason: "deny-cache"`). `true`
   * holds up to 10 000 keys.
   */
  denyCache?: boolean | { maxKeys?: number };
  /**
   * Micro-batching of {@link RateLimiter.consume} (off by default): consumes issued in the same event-loop turn
   * (or within `maxDelayMs`) go to Redis as one script call per hash slot (one per call batch on a standalone
   * server), applied in call order, each all rules or none on its own, each caller with its own decision or error.
   * `true` = `{ maxSize: 32, maxDelayMs: 0 }`. See the README's "Micro-batching".
   */
  batch?: boolean | BatchOptions;
}

interface QueuedConsume {
  readonly stateKey: string;
  readonly cost: number;
}

type Op = "consume" | "peek" | "refund" | "reset";

/**
 * A rate limiter with any number of rules per key, all evaluated atomically by one Lua script per call on Redis
 * server time. A rejected call consumes nothing. All state of one key lives in one string `<prefix>:rl:{<key>}`,
 * so it runs unchanged on Redis Cluster. Several limiters may share a key: each keeps the state of its own rules
 * (by rule name and algorithm) and leaves the others' alone (see the README's "Limiters sharing a key").
 *
 * @example
 * const limiter = new RateLimiter(redis, {
 *   rules: [
 *     { name: "burst", limit: 10, windowMs: 1_000 },
 *     { name: "daily", limit: 1_000, windowMs: 86_400_000, algorithm: "sliding-window" },
 *   ],
 * });
 * const d = await limiter.consume(`user:${id}`);
 * if (!d.allowed) reply.code(429).headers(toHeaders(d, limiter.rules));
 */
export class RateLimiter {
  /** The validated rules, with default names filled in. */
  readonly rules: readonly NormalizedRule[];
  /** The key prefix. */
  readonly prefix: string;
  readonly #redis: RedisClient;
  readonly #spec: string;
  /** The rules as consume's ARGV after the cost (see rulesArgs). */
  readonly #ruleArgs: readonly string[];
  readonly #maxCost: number;
  readonly #observer: CoordisObserver | undefined;
  readonly #policy: RedisErrorPolicy;
  readonly #memory: MemoryLimiter | undefined;
  readonly #denyCache: DenyCache | undefined;
  readonly #redisRetryMs: number;
  readonly #failClosedRetryAfterMs: number;
  readonly #batcher: Batcher<QueuedConsume, number[]> | undefined;
  /** `<prefix>:rl:`, the part of every key before the hash tag. */
  readonly #keyHead: string;
  #downUntil = 0;

  /**
   * @param redis an ioredis client (standalone, sentinel or cluster)
   * @throws InvalidArgumentError when an option or rule is invalid (see {@link Rule})
   */
  constructor(redis: RedisClient, options: RateLimiterOptions) {
    this.#redis = validate.redisClient("redis", redis);
    const opts = validate.options<RateLimiterOptions>("options", options);
    this.rules = Object.freeze(normalizeRules(opts.rules));
    this.#spec = rulesSpec(this.rules);
    this.#ruleArgs = rulesArgs(this.rules);
    this.#maxCost = Math.min(...this.rules.map((r) => r.capacity));
    this.prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
    this.#keyHead = entityKeys(this.prefix, "rl", "x").base.slice(0, -3);
    this.#observer = validate.observer("options.observer", opts.observer);
    const policy = opts.onRedisError === undefined ? "throw" : opts.onRedisError;
    if (typeof policy === "string") {
      validate.oneOf("options.onRedisError", policy, ["throw", "fail-open", "fail-closed"]);
    } else if (policy === null || typeof policy !== "object" || policy.fallback !== "memory") {
      throw new InvalidArgumentError(
        "options.onRedisError",
        'expected "throw", "fail-open", "fail-closed" or { fallback: "memory" }',
      );
    }
    this.#policy = policy;
    if (typeof policy === "object") {
      const maxKeys =
        policy.maxKeys === undefined
          ? undefined
          : validate.positiveInteger("options.onRedisError.maxKeys", policy.maxKeys);
      this.#memory = new MemoryLimiter(maxKeys);
    }
    if (opts.denyCache !== undefined && opts.denyCache !== true && opts.denyCache !== false) {
      validate.options<{ maxKeys?: number }>("options.denyCache", opts.denyCache);
    }
    if (opts.denyCache !== undefined && opts.denyCache !== false) {
      const maxKeys =
        opts.denyCache === true || opts.denyCache.maxKeys === undefined
          ? 10_000
          : validate.positiveInteger("options.denyCache.maxKeys", opts.denyCache.maxKeys);
      this.#denyCache = new DenyCache(maxKeys);
    }
    this.#redisRetryMs =
      opts.redisRetryMs === undefined
        ? 1_000
        : validate.durationMs("options.redisRetryMs", opts.redisRetryMs, { min: 0, max: 600_000 });
    this.#failClosedRetryAfterMs =
      opts.failClosedRetryAfterMs === undefined
        ? 1_000
        : validate.durationMs("options.failClosedRetryAfterMs", opts.failClosedRetryAfterMs);
    const batch = batchSettings("options.batch", opts.batch);
    if (batch !== undefined) this.#batcher = new Batcher(batch, (items) => this.#sendBatch(items));
  }

  /** Micro-batching settings, or `undefined` when consume is not batched. */
  get batch(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.#batcher?.settings;
  }

  /**
   * Takes `cost` units from every rule of `key`, or from none when any rule rejects the call.
   * @param key the rate-limit key (a user id, an IP...): 1–512 UTF-8 bytes without `{` `}`
   * @param cost units, an integer from 1 to the smallest rule capacity (default 1)
   * @returns the decision; `reason` says whether Redis or a local path decided
   * @throws InvalidArgumentError for a bad key or cost (nothing sent); RedisUnavailableError when Redis is down and
   *   the policy is `"throw"`; ScriptError when Redis rejected the script
   */
  async consume(key: string, cost = 1): Promise<Decision> {
    const stateKey = this.#key(key);
    this.#checkCost(cost, "cost");
    const started = performance.now();
    const denyCache = this.#denyCache;
    const cached = denyCache?.lookup(key, cost);
    if (cached !== undefined) return this.#report("consume", key, started, cached);
    const issued = denyCache === undefined ? 0 : denyCache.stamp();
    const batcher = this.#batcher;
    const decision =
      batcher === undefined
        ? await this.#run("consume", key, started, stateKey, cost)
        : await this.#run("consume", key, started, stateKey, cost, () =>
            batcher.add(isCluster(this.#redis) ? slotOf(stateKey) : 0, { stateKey, cost }),
          );
    if (!decision.allowed) denyCache?.remember(key, cost, decision, issued);
    return decision;
  }

  /**
   * Reports `key`'s state without consuming: `allowed` says whether a call of cost 1 would pass now.
   * @throws like {@link RateLimiter.consume}
   */
  async peek(key: string): Promise<Decision> {
    const stateKey = this.#key(key);
    this.#batcher?.flush();
    return this.#run("peek", key, performance.now(), stateKey, 1);
  }

  /**
   * Gives `cost` units back to every rule of `key` (e.g. when the admitted work was not done), never beyond a full
   * rule. Returns the state afterwards, as {@link RateLimiter.peek} would.
   * @throws like {@link RateLimiter.consume}
   */
  async refund(key: string, cost: number): Promise<Decision> {
    const stateKey = this.#key(key);
    this.#checkCost(cost, "cost");
    this.#denyCache?.delete(key);
    this.#batcher?.flush();
    return this.#run("refund", key, performance.now(), stateKey, cost);
  }

  /**
   * Forgets the state of this limiter's rules on `key`: every rule is full again. Rules of other limiters on the
   * same key (other names) keep theirs.
   * @throws InvalidArgumentError for a bad key; RedisUnavailableError / ScriptError from Redis (whatever the policy)
   */
  async reset(key: string): Promise<void> {
    const stateKey = this.#key(key);
    this.#denyCache?.delete(key);
    this.#memory?.delete(key);
    this.#batcher?.flush();
    const started = performance.now();
    try {
      await runScript(this.#redis, ratelimitScripts.reset, [stateKey], [this.#spec]);
    } catch (err) {
      this.#emit("reset", key, started, "error", undefined, err as Error);
      throw err;
    }
    this.#emit("reset", key, started, "ok");
  }

  #key(key: string): string {
    validateName(key, "key");
    // entityKeys(this.prefix, "rl", key).base, without validating the prefix (done once) and the key again.
    return `${this.#keyHead}{${key}}`;
  }

  #checkCost(cost: number, argument: string): void {
    validate.positiveInteger(argument, cost);
    if (cost > this.#maxCost) {
      throw new InvalidArgumentError(
        argument,
        `must be at most ${this.#maxCost} (the smallest rule capacity), got ${cost}: such a call could never pass`,
      );
    }
  }

  /**
   * One call through Redis (or the failure policy). `send` replaces the script call when consume is batched: the
   * policy, the observer event and the decision are then per caller exactly as unbatched.
   */
  async #run(
    op: Exclude<Op, "reset">,
    key: string,
    started: number,
    stateKey: string,
    cost: number,
    send?: () => Promise<number[]>,
  ) {
    if (this.#policy !== "throw" && performance.now() < this.#downUntil) {
      return this.#report(op, key, started, this.#local(op, key, cost));
    }
    let reply: number[];
    try {
      reply = await (send !== undefined
        ? send()
        : op === "consume"
          ? runScriptDynamic(this.#redis, ratelimitScripts.consume, [stateKey], [cost, ...this.#ruleArgs])
          : runScript(this.#redis, ratelimitScripts[op], [stateKey], [cost, this.#spec]));
    } catch (err) {
      if (!(err instanceof RedisUnavailableError) || this.#policy === "throw") {
        this.#emit(op, key, started, "error", undefined, err as Error);
        throw err;
      }
      this.#downUntil = performance.now() + this.#redisRetryMs;
      return this.#report(op, key, started, this.#local(op, key, cost), err);
    }
    this.#downUntil = 0;
    return this.#report(op, key, started, decisionFromReply(reply, this.rules));
  }

  /** Sends one batch of consumes (one hash slot) as one consume-batch script call. */
  async #sendBatch(items: readonly QueuedConsume[]): Promise<BatchOutcome<number[]>[]> {
    const args: (string | number)[] = items.map((i) => i.cost);
    for (const a of this.#ruleArgs) args.push(a);
    const reply = await runScriptDynamic(
      this.#redis,
      ratelimitScripts.consumeBatch,
      items.map((i) => i.stateKey),
      args,
    );
    // Per call: [allowed, ...per rule] as consume.lua's reply, or its error text.
    const out: BatchOutcome<number[]>[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const call = reply[i];
      out[i] = Array.isArray(call)
        ? { ok: true, value: call as number[] }
        : { ok: false, error: new ScriptError(ratelimitScripts.consume.name, String(call)) };
    }
    return out;
  }

  /** The decision of the failure policy while Redis is unavailable. */
  #local(op: Exclude<Op, "reset">, key: string, cost: number): Decision {
    if (this.#memory !== undefined) {
      if (op === "consume") return this.#memory.consume(key, cost, this.rules);
      // peek/refund of the fallback: report full limits (the fallback keeps only what consume wrote).
    }
    const open = this.#policy !== "fail-closed" || op === "refund";
    const parts = this.rules.map(
      (r): RuleDecision => ({
        name: r.name,
        allowed: open,
        limit: r.capacity,
        remaining: open ? r.capacity : 0,
        resetMs: open ? 0 : this.#failClosedRetryAfterMs,
        retryAfterMs: open ? 0 : this.#failClosedRetryAfterMs,
      }),
    );
    const reason = this.#memory !== undefined ? "fallback" : open ? "fail-open" : "fail-closed";
    return makeDecision(open, parts, reason);
  }

  #report(op: Op, key: string, started: number, decision: Decision, error?: unknown): Decision {
    this.#emit(op, key, started, decision.allowed ? "allowed" : "rejected", decision, error as Error | undefined);
    return decision;
  }

  #emit(op: Op, key: string, started: number, outcome: string, decision?: Decision, error?: Error): void {
    if (this.#observer?.onOperation === undefined) return;
    const algorithm = this.rules.find((r) => r.name === decision?.rule)?.algorithm;
    notifyOperation(this.#observer, {
      primitive: "ratelimit",
      op,
      outcome,
      durationMs: performance.now() - started,
      name: key,
      attributes: {
        ...(decision === undefined ? {} : { reason: decision.reason, rule: decision.rule }),
        ...(algorithm === undefined ? {} : { algorithm }),
      },
      ...(error === undefined ? {} : { error }),
    });
  }
}
