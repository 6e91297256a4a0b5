import { randomBytes } from "node:crypto";
import {
  type CoordisObserver,
  DEFAULT_PREFIX,
  entityKeys,
  notifyOperation,
  type RedisClient,
  runScript,
  validate,
  validateName,
  validatePrefix,
} from "@coordis/core";
import { ratelimitScripts } from "./scripts.generated.js";

/** Options of {@link ConcurrencyLimiter}. */
export interface ConcurrencyLimiterOptions {
  /** Most permits in flight per key at once (integer ≥ 1). */
  limit: number;
  /** Lease of each permit in ms: a holder that crashes frees its slot after this long. */
  ttlMs: number;
  /** Key prefix (default `"coordis"`); keys are `<prefix>:cl:{<key>}`. */
  prefix?: string;
  /** Receives one operation event per acquire / release / extend. */
  observer?: CoordisObserver;
}

/** One in-flight slot of a {@link ConcurrencyLimiter}. */
export interface Permit {
  /** The key it was taken for. */
  readonly key: string;
  /** Random token identifying this permit. */
  readonly token: string;
  /** Redis server time (ms since the epoch) at which the lease ends unless extended. */
  readonly expiresAtMs: number;
  /**
   * Frees the slot. Resolves `true` when the permit was still live, `false` when it had already expired (its slot
   * may have been given to someone else meanwhile) or was released before.
   * @throws RedisUnavailableError / ScriptError
   */
  release(): Promise<boolean>;
  /**
   * Renews the lease to `ttlMs` (default the limiter's) from now. Resolves `false` when the permit had already
   * expired or was released (it is not renewed then).
   * @throws InvalidArgumentError for a bad ttlMs; RedisUnavailableError / ScriptError
   */
  extend(ttlMs?: number): Promise<boolean>;
}

/**
 * Limits how many operations per key run at the same time (the Stripe-style concurrent-requests limiter): each
 * permit is a member of a sorted set scored by its lease expiry on Redis server time, expired permits are purged
 * on every acquire, so a crashed holder frees its slot after `ttlMs`.
 *
 * @example
 * const uploads = new ConcurrencyLimiter(redis, { limit: 3, ttlMs: 30_000 });
 * const permit = await uploads.acquire(`user:${id}`);
 * if (permit === null) return reply.code(429).send();
 * try { await handleUpload(); } finally { await permit.release(); }
 */
export class ConcurrencyLimiter {
  /** Most permits in flight per key. */
  readonly limit: number;
  /** Default lease of a permit, ms. */
  readonly ttlMs: number;
  /** The key prefix. */
  readonly prefix: string;
  readonly #redis: RedisClient;
  readonly #observer: CoordisObserver | undefined;

  /** @throws InvalidArgumentError when an option is invalid */
  constructor(redis: RedisClient, options: ConcurrencyLimiterOptions) {
    this.#redis = validate.redisClient("redis", redis);
    const opts = validate.options<ConcurrencyLimiterOptions>("options", options);
    this.limit = validate.positiveInteger("options.limit", opts.limit, 1_000_000);
    this.ttlMs = validate.durationMs("options.ttlMs", opts.ttlMs);
    this.prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
    this.#observer = validate.observer("options.observer", opts.observer);
  }

  /**
   * Takes a slot of `key` when fewer than `limit` live permits exist (one round trip).
   * @returns the permit, or `null` when all slots are taken
   * @throws InvalidArgumentError for a bad key (nothing sent); RedisUnavailableError / ScriptError
   */
  async acquire(key: string): Promise<Permit | null> {
    validateName(key, "key");
    const zkey = entityKeys(this.prefix, "cl", key).base;
    const token = randomBytes(16).toString("hex");
    const started = performance.now();
    let reply: [number, number, number];
    try {
      reply = await runScript(
        this.#redis,
        ratelimitScripts.concurrencyAcquire,
        [zkey],
        [token, this.limit, this.ttlMs],
      );
    } catch (err) {
      // No answer (a timeout, a dropped connection): the acquire may still reach Redis, late, and take a slot for a
      // full ttlMs with a token nobody holds. A release of that token is queued behind it on the same connection (fire
      // and forget), so such a phantom permit is freed as soon as Redis answers again.
      runScript(this.#redis, ratelimitScripts.concurrencyRelease, [zkey], [token]).catch(() => 0);
      this.#emit("acquire", key, started, "error", err as Error);
      throw err;
    }
    const [acquired, expiresAt] = reply;
    this.#emit("acquire", key, started, acquired === 1 ? "acquired" : "busy");
    if (acquired !== 1) return null;
    let expiresAtMs = expiresAt;
    const permit: Permit = {
      key,
      token,
      get expiresAtMs() {
        return expiresAtMs;
      },
      release: async () => {
        const t = performance.now();
        try {
          const live = (await runScript(this.#redis, ratelimitScripts.concurrencyRelease, [zkey], [token])) === 1;
          this.#emit("release", key, t, live ? "ok" : "expired");
          return live;
        } catch (err) {
          this.#emit("release", key, t, "error", err as Error);
          throw err;
        }
      },
      extend: async (ttlMs = this.ttlMs) => {
        validate.durationMs("ttlMs", ttlMs);
        const t = performance.now();
        try {
          const [ok, at] = await runScript(this.#redis, ratelimitScripts.concurrencyExtend, [zkey], [token, ttlMs]);
          this.#emit("extend", key, t, ok === 1 ? "ok" : "expired");
          if (ok === 1) expiresAtMs = at;
          return ok === 1;
        } catch (err) {
          this.#emit("extend", key, t, "error", err as Error);
          throw err;
        }
      },
    };
    return permit;
  }

  #emit(op: string, key: string, started: number, outcome: string, error?: Error): void {
    notifyOperation(this.#observer, {
      primitive: "concurrency",
      op,
      outcome,
      durationMs: performance.now() - started,
      name: key,
      ...(error === undefined ? {} : { error }),
    });
  }
}
