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

/** Most permits a {@link Semaphore} accepts. */
export const MAX_PERMITS = 1_000_000;
const SEMAPHORE_KEYS = ["permits"] as const;

/** Options of {@link Semaphore}. */
export interface SemaphoreOptions extends CommonLockOptions {
  /** How many leases may be held at once (1 to 1 000 000). Required. */
  permits: number;
}

/**
 * A counting semaphore: up to `permits` leases held at once, each with its own expiry decided by Redis server time
 * (a sorted set of token → expiry ms; expired permits are purged inside every script, never judged by client
 * clocks). Every lease carries a fence that strictly increases per semaphore name. Same surface as {@link Mutex}.
 * Keys: `<prefix>:sem:{<name>}` and `<prefix>:sem:{<name>}:fence`. All clients of one name must use the same
 * `permits`.
 *
 * @example
 * const sem = new Semaphore(redis, "pdf-renderers", { permits: 4, ttlMs: 60_000 });
 * await sem.using(async () => renderPdf());
 */
export class Semaphore extends LockBase {
  /** How many leases may be held at once. */
  readonly permits: number;
  readonly #redis: RedisClient;
  readonly #holdersKey: string;
  readonly #fenceKey: string;
  readonly #backend: LeaseBackend;
  readonly #durability: Durability | undefined;

  /**
   * @param redis an ioredis `Redis` or `Cluster`
   * @param name the semaphore's name: 1–512 UTF-8 bytes, no `{` or `}`
   * @param options `permits` (required), `ttlMs` (default 30 000, at most 24 h), `prefix`, `observer`, `durability`
   * @throws InvalidArgumentError for a bad argument (no Redis call is made)
   */
  constructor(redis: RedisClient, name: string, options: SemaphoreOptions) {
    validate.redisClient("redis", redis);
    validateName(name, "name");
    const raw = parseLockOptions<SemaphoreOptions>(options, SEMAPHORE_KEYS);
    const permits = validate.positiveInteger("options.permits", raw.permits, MAX_PERMITS);
    const common = parseCommon(raw, [redis]);
    super("semaphore", name, common.ttlMs, DEFAULT_DRIFT_FACTOR, common.observer, common.durability?.timeoutMs);
    const keys = entityKeys(common.prefix, "sem", name);
    this.permits = permits;
    this.#redis = redis;
    this.#holdersKey = keys.base;
    this.#fenceKey = keys.sub("fence");
    this.#durability = common.durability;
    const durability = common.durability;
    this.#backend = {
      extend: async (token, ttlMs) => {
        if (durability === undefined) {
          return (await runScript(this.#redis, lockScripts.semExtend, [this.#holdersKey], [token, ttlMs])) === 1;
        }
        const { reply, error } = await runScriptDurable(
          this.#redis,
          lockScripts.semExtend,
          [this.#holdersKey],
          [token, ttlMs],
          durability,
        );
        // Extended on the primary but not confirmed on the replicas: unknown, like an unanswered extension.
        if (reply === 1 && error !== undefined) throw error;
        return reply === 1;
      },
      release: async (token) =>
        (await runScript(this.#redis, lockScripts.semRelease, [this.#holdersKey], [token])) === 1,
    };
  }

  protected async attempt(): Promise<AttemptResult> {
    const token = randomToken(TOKEN_BYTES);
    const start = performance.now();
    const undo = () => runScriptSource(this.#redis, lockScripts.semRelease, [this.#holdersKey], [token]);
    let sent: DurableOutcome<number>;
    try {
      sent = await this.request(this.#redis, undo, () =>
        runScriptDurable(
          this.#redis,
          lockScripts.semAcquire,
          [this.#holdersKey, this.#fenceKey],
          [token, this.ttlMs, this.permits],
          this.#durability,
        ),
      );
    } catch (err) {
      // No answer: retried (with a new token) until waitMs; a refusal or a closed client: thrown.
      return this.unanswered(this.#redis, err);
    }
    const { reply, error } = sent;
    // One integer: the new fence when acquired, minus the ms until the earliest permit expires when full.
    if (reply < 0) return { kind: "busy", retryAfterMs: -reply };
    const fence = reply;
    const giveBack = () => this.giveBack(this.#redis, () => this.#backend.release(token), undo);
    if (error !== undefined) return this.undurable(error, giveBack);
    return this.settle(token, fence, start, this.#backend, giveBack);
  }
}
