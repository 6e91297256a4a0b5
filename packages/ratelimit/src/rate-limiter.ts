import {
  Batcher,
  type BatchOutcome,
  type CoordisObserver,
  entityKeys,
  InvalidArgumentError,
  instrument,
  isCluster,
  type OperationSite,
  type RedisClient,
  RedisUnavailableError,
  reportOperation,
  runScript,
  runScriptDynamic,
  slotOf,
  toCoordisError,
  validate,
  validateName,
} from "@coordis/core";
import { type Decision, decisionFromReply, makeDecision, type RuleDecision, type ScriptReply } from "./decision.js";
import { DenyCache } from "./deny-cache.js";
import { healthOf, type RedisHealth } from "./health.js";
import { MemoryLimiter } from "./memory-limiter.js";
import { parseRateLimiterOptions, type RateLimiterOptions, type RedisErrorPolicy } from "./options.js";
import { splitByMigration, unavailableIfFull } from "./redis-failures.js";
import { type NormalizedRule, rulesArgs, rulesSpec } from "./rules.js";
import { ratelimitScripts } from "./scripts.generated.js";
import { type SpecialisedConsume, specialisedConsume } from "./specialised.js";

/** A consume reply string (several rules admitted: "<s>:<us>;..."), as opposed to an error text in a batch reply. */
const isTimed = (reply: string): boolean => {
  const c = reply.charCodeAt(0);
  return c >= 48 && c <= 57;
};

interface QueuedConsume {
  readonly stateKey: string;
  readonly cost: number;
}

type Op = "consume" | "peek" | "refund" | "reset";

/** ioredis statuses of a standalone client whose connection is down (it queues commands until it is back). */
const OFFLINE: ReadonlySet<string> = new Set(["reconnecting", "close", "end"]);

function offlineError(): RedisUnavailableError {
  return new RedisUnavailableError(
    "the connection to Redis is down (the client is reconnecting): the failure policy decides, and nothing is queued to run later",
  );
}

/**
 * A rate limiter with up to 32 rules per key, all evaluated atomically by one Lua script per call on Redis
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
  /** This rule set's own consume script (its rules as constants), or undefined: the shared one with #ruleArgs. */
  readonly #ownConsume: SpecialisedConsume | undefined;
  readonly #maxCost: number;
  readonly #observer: CoordisObserver | undefined;
  readonly #policy: RedisErrorPolicy;
  readonly #memory: MemoryLimiter | undefined;
  readonly #denyCache: DenyCache | undefined;
  readonly #redisRetryMs: number;
  readonly #failClosedRetryAfterMs: number;
  readonly #batcher: Batcher<QueuedConsume, ScriptReply> | undefined;
  /** Each rule's algorithm by name (the observer's `algorithm` attribute). */
  readonly #algorithms: ReadonlyMap<string, string>;
  /** `<prefix>:rl:`, the part of every key before the hash tag. */
  readonly #keyHead: string;
  /**
   * Which nodes failed lately, shared by every limiter on this client (see RedisHealth): after a failure the policy
   * decides without trying Redis for redisRetryMs, then one call probes.
   */
  readonly #health: RedisHealth;
  /** Whether the client is a Cluster (whose nodes fail one by one). */
  readonly #cluster: boolean;

  /**
   * @param redis an ioredis client (standalone, sentinel or cluster)
   * @throws InvalidArgumentError when an option or rule is invalid (see {@link Rule})
   */
  constructor(redis: RedisClient, options: RateLimiterOptions) {
    this.#redis = validate.redisClient("redis", redis);
    const o = parseRateLimiterOptions(options);
    this.rules = o.rules;
    this.#spec = rulesSpec(this.rules);
    this.#ruleArgs = rulesArgs(this.rules);
    this.#ownConsume = specialisedConsume(this.#ruleArgs);
    this.#maxCost = Math.min(...this.rules.map((r) => r.capacity));
    this.#algorithms = new Map(this.rules.map((r) => [r.name, r.algorithm]));
    this.prefix = o.prefix;
    this.#keyHead = entityKeys(this.prefix, "rl", "x").base.slice(0, -3);
    this.#observer = o.observer;
    this.#policy = o.policy;
    if (o.fallback !== undefined) this.#memory = new MemoryLimiter(o.fallback.maxKeys);
    if (o.denyCacheKeys !== undefined) this.#denyCache = new DenyCache(o.denyCacheKeys);
    this.#redisRetryMs = o.redisRetryMs;
    this.#failClosedRetryAfterMs = o.failClosedRetryAfterMs;
    this.#health = healthOf(this.#redis);
    this.#cluster = isCluster(this.#redis);
    if (o.batch !== undefined) this.#batcher = new Batcher(o.batch, (items) => this.#sendBatch(items));
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
  consume(key: string, cost = 1): Promise<Decision> {
    let stateKey: string;
    try {
      stateKey = this.#key(key);
      this.#checkCost(cost, "cost");
    } catch (err) {
      return Promise.reject(err);
    }
    const started = performance.now();
    const denyCache = this.#denyCache;
    if (denyCache !== undefined) return this.#consumeDenyCached(denyCache, key, started, stateKey, cost);
    // The common path, written without async functions: one promise per call besides the script's.
    let node: string | undefined;
    if (this.#health.troubled) {
      node = this.#nodeOf(stateKey);
      if (this.#skip(node, started)) {
        try {
          return Promise.resolve(this.#report("consume", key, started, this.#local("consume", key, cost)));
        } catch (err) {
          return Promise.reject(err); // as an async function would: a promise, never a throw
        }
      }
    }
    return this.#send("consume", stateKey, cost).then(
      (reply) => this.#decided("consume", key, started, stateKey, reply, node),
      (err: unknown) => this.#failed("consume", key, started, stateKey, cost, err, node),
    );
  }

  /**
   * Whether a call must not be sent because the connection is down: a standalone client between reconnects queues
   * commands and runs them once it is back, long after the failure policy answered the caller (a fail-closed
   * rejection, or the memory fallback's decision, would then also take its units from Redis). Under "throw" a call is
   * sent as usual (its caller learns that the outcome is unknown).
   */
  #offline(): boolean {
    return !this.#cluster && this.#policy !== "throw" && OFFLINE.has((this.#redis as { status?: string }).status ?? "");
  }

  /**
   * One call's script reply, nothing sent while the connection is down (see #offline): a consume through the batcher
   * when consume is batched, else one script call.
   */
  #send(op: Exclude<Op, "reset">, stateKey: string, cost: number): Promise<ScriptReply> {
    if (this.#offline()) return Promise.reject(offlineError());
    if (op !== "consume") return runScript(this.#redis, ratelimitScripts[op], [stateKey], [cost, this.#spec]);
    const batcher = this.#batcher;
    return batcher === undefined
      ? this.#consumeScript(stateKey, cost)
      : batcher.add(this.#cluster ? slotOf(stateKey) : 0, { stateKey, cost });
  }

  /** One consume script call (unbatched, or a batch of one). */
  #consumeScript(stateKey: string, cost: number): Promise<ScriptReply> {
    const own = this.#ownConsume;
    // a cost of 1 is sent as no argument at all (the script's default): each argument costs Redis about 1k instructions
    if (own !== undefined) return runScriptDynamic(this.#redis, own, [stateKey], cost === 1 ? [] : [cost]);
    return runScriptDynamic<[string], string[], ScriptReply>(
      this.#redis,
      ratelimitScripts.consume,
      [stateKey],
      [cost, ...this.#ruleArgs],
    );
  }

  /** {@link RateLimiter.consume} with a deny cache: a key it holds as rejected is answered without Redis. */
  async #consumeDenyCached(
    denyCache: DenyCache,
    key: string,
    started: number,
    stateKey: string,
    cost: number,
  ): Promise<Decision> {
    const cached = denyCache.lookup(key, cost);
    if (cached !== undefined) return this.#report("consume", key, started, cached);
    const issued = denyCache.stamp();
    const decision = await this.#run("consume", key, started, stateKey, cost);
    // Counted from when the call was issued (Redis decided later): the local answer never outlasts Redis' instant.
    if (!decision.allowed) denyCache.remember(key, cost, decision, issued, started);
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
   * @throws InvalidArgumentError for a bad key; RedisUnavailableError (also when a full Redis refuses the write) /
   *   ScriptError from Redis (whatever the policy)
   */
  async reset(key: string): Promise<void> {
    const stateKey = this.#key(key);
    this.#denyCache?.delete(key);
    this.#memory?.delete(key);
    this.#batcher?.flush();
    await instrument(this.#observer, { primitive: "ratelimit", op: "reset", name: key }, () =>
      runScript(this.#redis, ratelimitScripts.reset, [stateKey], [this.#spec]).catch((err: unknown) => {
        throw unavailableIfFull(err);
      }),
    );
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
   * One call through Redis (or the failure policy); a consume goes through the batcher when consume is batched, so
   * the policy, the observer event and the decision are per caller exactly as unbatched.
   */
  async #run(op: Exclude<Op, "reset">, key: string, started: number, stateKey: string, cost: number) {
    const now = performance.now();
    let node: string | undefined;
    if (this.#health.troubled) {
      node = this.#nodeOf(stateKey);
      if (this.#skip(node, now)) return this.#report(op, key, started, this.#local(op, key, cost));
    }
    let reply: ScriptReply;
    try {
      reply = await this.#send(op, stateKey, cost);
    } catch (err) {
      return this.#failed(op, key, started, stateKey, cost, err, node);
    }
    return this.#decided(op, key, started, stateKey, reply, node);
  }

  /**
   * The decision of a script reply. `node`: the node the call was sent for, when the client's health was troubled
   * then (a probe is settled for the node it probed, wherever the slot has moved since).
   */
  #decided(
    op: Exclude<Op, "reset">,
    key: string,
    started: number,
    stateKey: string,
    reply: ScriptReply,
    node: string | undefined,
  ): Decision {
    const health = this.#health;
    if (health.troubled) health.answered(node ?? this.#nodeOf(stateKey));
    return this.#report(op, key, started, decisionFromReply(reply, this.rules));
  }

  /** A failed script call: the failure policy's decision while Redis is unavailable, else the error (thrown). */
  #failed(
    op: Exclude<Op, "reset">,
    key: string,
    started: number,
    stateKey: string,
    cost: number,
    err: unknown,
    node: string | undefined,
  ): Decision {
    err = unavailableIfFull(err);
    const unavailable = err instanceof RedisUnavailableError;
    // Redis answered (a refusal is an answer: a probe after an outage is over), or it could not be reached, which every
    // limiter on this client learns (also from a limiter whose policy is "throw").
    const failedNode = node ?? this.#nodeOf(stateKey);
    if (unavailable) this.#health.failed(failedNode, performance.now());
    else this.#health.answered(failedNode);
    if (!unavailable || this.#policy === "throw") {
      reportOperation(this.#observer, { primitive: "ratelimit", op, name: key }, started, "error", err);
      throw err;
    }
    return this.#report(op, key, started, this.#local(op, key, cost), err);
  }

  /**
   * Sends one batch of consumes (one hash slot) as one consume-batch script call; a batch of one call (alone in its
   * event-loop turn) as the plain consume script, whose reply is the same and which costs Redis less.
   */
  async #sendBatch(items: readonly QueuedConsume[]): Promise<BatchOutcome<ScriptReply>[]> {
    // The calls were queued while the client was connected; if the connection has gone down since (a batch leaves at
    // the end of the turn or after maxDelayMs), the client would hold the batch and run it on Redis once it is back,
    // long after the failure policy answered its callers: as for an unbatched call, nothing is sent (see #offline).
    if (this.#offline()) return items.map(() => ({ ok: false, error: offlineError() }));
    if (items.length === 1) {
      const only = items[0] as QueuedConsume;
      return [{ ok: true, value: await this.#consumeScript(only.stateKey, only.cost) }];
    }
    const args: (string | number)[] = items.map((i) => i.cost);
    for (const a of this.#ruleArgs) args.push(a);
    let reply: unknown[];
    try {
      reply = await runScriptDynamic(
        this.#redis,
        ratelimitScripts.consumeBatch,
        items.map((i) => i.stateKey),
        args,
      );
    } catch (err) {
      // A Cluster slot being migrated refuses a script whose keys the migration has split between two nodes
      // (TRYAGAIN, until ioredis gives up): the batch did not run. Each call goes on its own, following ASK, as an
      // unbatched call does; the master is not unavailable.
      if (!this.#cluster || !splitByMigration(err)) throw err;
      return Promise.all(
        items.map((i) =>
          this.#consumeScript(i.stateKey, i.cost).then(
            (value): BatchOutcome<ScriptReply> => ({ ok: true, value }),
            (error: unknown): BatchOutcome<ScriptReply> => ({ ok: false, error: toCoordisError(error) }),
          ),
        ),
      );
    }
    // Per call: its reply as consume.lua's (a number, an array, or a string opening with the server time's digits),
    // or its error text (never opening with a digit).
    const out: BatchOutcome<ScriptReply>[] = new Array(items.length);
    for (let i = 0; i < items.length; i++) {
      const call = reply[i];
      out[i] =
        typeof call === "number" || Array.isArray(call) || (typeof call === "string" && isTimed(call))
          ? { ok: true, value: call }
          : // READONLY, NOREPLICAS, MISCONF...: Redis refused the write (nothing ran), the failure policy applies.
            { ok: false, error: toCoordisError(new Error(String(call)), ratelimitScripts.consume.name) };
    }
    return out;
  }

  /**
   * Whether the failure policy decides a call to `node` at `now` without trying Redis (the node failed less than
   * redisRetryMs ago, or another call is probing it); never under "throw". The first call after the pause goes to
   * Redis as the probe: until its answer the others keep to the policy instead of each waiting for a command timeout
   * while Redis is still down (one timeout per pause, not one per call).
   */
  #skip(node: string, now: number): boolean {
    return this.#policy !== "throw" && this.#health.skip(node, now, this.#redisRetryMs);
  }

  /** On a Cluster, the node serving `stateKey`'s slot as the client knows it ("" while its slot map is unknown). */
  #nodeOf(stateKey: string): string {
    if (!this.#cluster) return "";
    return (this.#redis as { slots?: readonly (readonly string[] | undefined)[] }).slots?.[slotOf(stateKey)]?.[0] ?? "";
  }

  /** The decision of the failure policy while Redis is unavailable. */
  #local(op: Exclude<Op, "reset">, key: string, cost: number): Decision {
    const memory = this.#memory;
    if (memory !== undefined) {
      if (op === "consume") return memory.consume(key, cost, this.rules);
      return op === "peek" ? memory.peek(key, this.rules) : memory.refund(key, cost, this.rules);
    }
    // peek and refund report what a consume would meet now (nothing is refunded while Redis is unavailable).
    const open = this.#policy !== "fail-closed";
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
    const observer = this.#observer;
    if (observer?.onOperation === undefined) return decision;
    const algorithm = this.#algorithms.get(decision.rule);
    const site: OperationSite = {
      primitive: "ratelimit",
      op,
      name: key,
      attributes:
        algorithm === undefined
          ? { reason: decision.reason, rule: decision.rule }
          : { reason: decision.reason, rule: decision.rule, algorithm },
    };
    reportOperation(observer, site, started, decision.allowed ? "allowed" : "rejected", error);
    return decision;
  }
}
