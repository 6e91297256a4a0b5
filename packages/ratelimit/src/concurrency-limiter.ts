import {
  type CoordisObserver,
  entityKeys,
  instrument,
  type RedisClient,
  RedisUnavailableError,
  randomToken,
  reportOperation,
  runScript,
  runScriptSource,
  undoUntilAnswered,
  validate,
  validateName,
} from "@coordis/core";
import { type ConcurrencyLimiterOptions, parseConcurrencyOptions } from "./options.js";
import { ratelimitScripts } from "./scripts.generated.js";

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
   * expired or was released (it is not renewed then). When it rejects with RedisUnavailableError the renewal may
   * still have run (only its answer was lost), possibly shortening the lease: `expiresAtMs` becomes the earlier of
   * its old value and the earliest instant that renewal could have set.
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

  /** @throws InvalidArgumentError when an option is invalid (unknown keys included) */
  constructor(redis: RedisClient, options: ConcurrencyLimiterOptions) {
    this.#redis = validate.redisClient("redis", redis);
    const o = parseConcurrencyOptions(options);
    this.limit = o.limit;
    this.ttlMs = o.ttlMs;
    this.prefix = o.prefix;
    this.#observer = o.observer;
  }

  /**
   * Takes a slot of `key` when fewer than `limit` live permits exist (one round trip).
   * @returns the permit, or `null` when all slots are taken
   * @throws InvalidArgumentError for a bad key (nothing sent); RedisUnavailableError / ScriptError
   */
  async acquire(key: string): Promise<Permit | null> {
    validateName(key, "key");
    const zkey = entityKeys(this.prefix, "cl", key).base;
    const token = randomToken(16);
    const started = performance.now();
    const site = { primitive: "concurrency", op: "acquire", name: key };
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
      // full ttlMs with a token nobody holds. A release of that token is queued behind it on the same connection (in
      // the background), so such a phantom permit is freed as soon as Redis answers again, and sent again while
      // Redis does not answer it, for up to ttlMs (undoUntilAnswered). It goes with the script's source, so it runs
      // even where the server has not cached the release (see runScriptSource).
      undoUntilAnswered(
        this.#redis,
        () => runScriptSource(this.#redis, ratelimitScripts.concurrencyRelease, [zkey], [token]),
        this.ttlMs,
        undefined,
        { observer: this.#observer, site },
      );
      reportOperation(this.#observer, site, started, "error", err);
      throw err;
    }
    const [acquired, expiresAt] = reply;
    reportOperation(this.#observer, site, started, acquired === 1 ? "acquired" : "busy");
    if (acquired !== 1) return null;
    let expiresAtMs = expiresAt;
    // Server time minus the local monotonic clock, never above the true difference: the script ran (on server time
    // expiresAt - ttl) before its answer arrived here. An extension whose answer is lost may have run from any instant
    // after it was sent, so the earliest expiry it can have set is its local send time + this + its ttlMs.
    let offsetMs = expiresAt - this.ttlMs - performance.now();
    // The longest lease the permit may hold from a renewal that has run (or may still run) before a release: an
    // unanswered release is sent again for that long (the limiter's ttlMs, or a longer extend(ttlMs)).
    let leaseMs = this.ttlMs;
    const live = (ok: number) => (ok === 1 ? "ok" : "expired");
    const permit: Permit = {
      key,
      token,
      get expiresAtMs() {
        return expiresAtMs;
      },
      release: async () => {
        const released = { primitive: "concurrency", op: "release", name: key };
        const sent = runScript(this.#redis, ratelimitScripts.concurrencyRelease, [zkey], [token]);
        // Unanswered (a blip outlasting the command timeout): the caller is told, and the release is sent again while
        // Redis does not answer, as an unanswered acquire's undo is (undoUntilAnswered), for at most the lease: one
        // release lost in a blip left the slot taken by nobody until it expired.
        undoUntilAnswered(
          this.#redis,
          () => runScriptSource(this.#redis, ratelimitScripts.concurrencyRelease, [zkey], [token]),
          leaseMs,
          sent,
          { observer: this.#observer, site: released },
        );
        const ok = await instrument(this.#observer, released, () => sent, { outcome: live });
        return ok === 1;
      },
      extend: async (ttlMs = this.ttlMs) => {
        validate.durationMs("ttlMs", ttlMs);
        if (ttlMs > leaseMs) leaseMs = ttlMs;
        const sentAt = performance.now();
        let ok: number;
        let at: number;
        try {
          [ok, at] = await instrument(
            this.#observer,
            { primitive: "concurrency", op: "extend", name: key },
            () => runScript(this.#redis, ratelimitScripts.concurrencyExtend, [zkey], [token, ttlMs]),
            { outcome: ([ok]) => live(ok) },
          );
        } catch (err) {
          // No answer: the renewal may have run, to ttlMs from an instant after it was sent (see offsetMs).
          if (err instanceof RedisUnavailableError) expiresAtMs = Math.min(expiresAtMs, sentAt + offsetMs + ttlMs);
          throw err;
        }
        if (ok === 1) {
          expiresAtMs = at;
          offsetMs = Math.max(offsetMs, at - ttlMs - performance.now());
        }
        return ok === 1;
      },
    };
    return permit;
  }
}
