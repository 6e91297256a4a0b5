import { performance } from "node:perf_hooks";
import {
  type Durability,
  type DurableOutcome,
  entityKeys,
  type RedisClient,
  randomToken,
  runScript,
  runScriptDurable,
  runScriptSource,
  validate,
  validateName,
} from "@coordis/core";
import type { LeaseBackend } from "./lease.js";
import { type AttemptResult, LockBase } from "./lock-base.js";
import { type CommonLockOptions, DEFAULT_DRIFT_FACTOR, parseCommon, parseLockOptions, TOKEN_BYTES } from "./options.js";
import { lockScripts } from "./scripts.generated.js";

/** Options of {@link Mutex}. */
export interface MutexOptions extends CommonLockOptions {}

/**
 * A fenced mutual-exclusion lock on one Redis (standalone, Sentinel or Cluster). Each acquisition is one script:
 * `SET lock token NX PX ttl` plus `INCR fence`, so every lease carries a fence that strictly increases for the
 * lifetime of the Redis data. Keys: `<prefix>:lock:{<name>}` and `<prefix>:lock:{<name>}:fence`.
 *
 * Not reentrant: a second `acquire()` of the same name from the same process waits like anyone else.
 *
 * @example
 * const mutex = new Mutex(redis, "billing-export", { ttlMs: 10_000 });
 * await mutex.using(async (lease) => exportInvoices({ fence: lease.fence, signal: lease.signal }));
 */
export class Mutex extends LockBase {
  readonly #redis: RedisClient;
  readonly #lockKey: string;
  readonly #fenceKey: string;
  readonly #backend: LeaseBackend;
  readonly #durability: Durability | undefined;

  /**
   * @param redis an ioredis `Redis` or `Cluster`
   * @param name the lock's name: 1–512 UTF-8 bytes, no `{` or `}`
   * @param options `ttlMs` (default 30 000, at most 24 h), `prefix`, `observer`, `durability`
   * @throws InvalidArgumentError for a bad argument (no Redis call is made)
   */
  constructor(redis: RedisClient, name: string, options: MutexOptions = {}) {
    validate.redisClient("redis", redis);
    validateName(name, "name");
    const common = parseCommon(parseLockOptions<MutexOptions>(options), [redis]);
    super("mutex", name, common.ttlMs, DEFAULT_DRIFT_FACTOR, common.observer, common.durability?.timeoutMs);
    const keys = entityKeys(common.prefix, "lock", name);
    this.#redis = redis;
    this.#lockKey = keys.base;
    this.#fenceKey = keys.sub("fence");
    this.#durability = common.durability;
    const durability = common.durability;
    this.#backend = {
      extend: async (token, ttlMs) => {
        if (durability === undefined) {
          return (await runScript(this.#redis, lockScripts.extend, [this.#lockKey], [token, ttlMs])) === 1;
        }
        const { reply, error } = await runScriptDurable(
          this.#redis,
          lockScripts.extend,
          [this.#lockKey],
          [token, ttlMs],
          durability,
        );
        // Extended on the primary but not confirmed on the replicas: unknown, like an unanswered extension.
        if (reply === 1 && error !== undefined) throw error;
        return reply === 1;
      },
      release: async (token) => (await runScript(this.#redis, lockScripts.release, [this.#lockKey], [token])) === 1,
    };
  }

  protected async attempt(): Promise<AttemptResult> {
    const token = randomToken(TOKEN_BYTES);
    const start = performance.now();
    const keys = [this.#lockKey, this.#fenceKey] as const;
    const undo = () => runScriptSource(this.#redis, lockScripts.release, [this.#lockKey], [token]);
    let sent: DurableOutcome<readonly [number, number, number]>;
    try {
      sent = await this.request(this.#redis, undo, () =>
        runScriptDurable(this.#redis, lockScripts.acquire, keys, [token, this.ttlMs], this.#durability),
      );
    } catch (err) {
      // No answer: retried (with a new token) until waitMs; a refusal or a closed client: thrown.
      return this.unanswered(this.#redis, err);
    }
    const { reply, error } = sent;
    const [acquired, fence, pttlMs] = reply;
    // A remaining TTL of 0 ms: the holder's lock ends within this millisecond (no TTL, -1: unknown).
    if (acquired !== 1) return { kind: "busy", retryAfterMs: pttlMs >= 0 ? Math.max(1, pttlMs) : 0 };
    const giveBack = () => this.giveBack(this.#redis, () => this.#backend.release(token), undo);
    if (error !== undefined) return this.undurable(error, giveBack);
    return this.settle(token, fence, start, this.#backend, giveBack);
  }
}
