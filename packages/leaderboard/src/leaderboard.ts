import {
  type CoordisObserver,
  entityKeys,
  instrument,
  type OperationSite,
  type RedisClient,
  validate,
} from "@coordis/core";
import { LeaderboardBackend } from "./backend.js";
import {
  type BoardOptions,
  checkMeta,
  type LeaderboardOptions,
  MAX_BATCH,
  MAX_MEMBER_BYTES,
  MAX_RADIUS,
  type Order,
  parseBoardOptions,
  parseLeaderboardOptions,
  parseSubmissions,
  parseSubmit,
  type Submission,
  type SubmitOptions,
  type UpdatePolicy,
} from "./options.js";
import type { Period } from "./periods.js";
import type { Entry, PercentileResult, Standing, SubmitResult } from "./results.js";

/**
 * A leaderboard on Redis sorted sets. Every call is one Lua script, so one round trip, atomic against concurrent
 * submits from any number of processes. Each configured period has its own board per bucket (day, ISO week,
 * month; all-time); a submit updates all of them at once. Equal scores rank by arrival: the member that reached
 * the score first ranks higher, exactly, for every finite double.
 *
 * @example
 * const board = new Leaderboard<{ name: string }>(redis, "arcade", { periods: ["daily", "all"] });
 * await board.submit("p1", 4200, { meta: { name: "Ada" } });
 * const top = await board.top(10);                        // today's top 10 with names
 * const mine = await board.around("p1", 2, { period: "all" });
 */
export class Leaderboard<M = unknown> {
  /** The leaderboard's name (its keys' hash tag). */
  readonly name: string;
  /** Rank order. */
  readonly order: Order;
  /** Update policy. */
  readonly update: UpdatePolicy;
  /** Configured periods, in order. */
  readonly periods: readonly Period[];

  readonly #observer: CoordisObserver | undefined;
  readonly #backend: LeaderboardBackend<M>;

  /**
   * @param redis an ioredis client or cluster (e.g. from `connect()`)
   * @param name the leaderboard's name (1–512 bytes, no braces)
   * @throws InvalidArgumentError on a bad name, a bad option or an unknown option key
   */
  constructor(redis: RedisClient, name: string, options?: LeaderboardOptions) {
    validate.redisClient("redis", redis);
    const settings = parseLeaderboardOptions(options);
    const keys = entityKeys(settings.prefix, "lb", name);
    this.name = name;
    this.order = settings.order;
    this.update = settings.update;
    this.periods = settings.periods;
    this.#observer = settings.observer;
    this.#backend = new LeaderboardBackend<M>(redis, keys, settings);
  }

  /** Micro-batching settings of submit, or `undefined` when submit is not batched. */
  get batch(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.#backend.batchSettings;
  }

  /**
   * Submits a score for `member` to every configured period board in one atomic script, applying the update
   * policy on each board separately (a member's daily best and all-time best differ).
   *
   * @param score a finite number; with `increment` the amount to add, |score| ≤ 2^53 − 1, and the sum must stay
   *   within ±(2^53 − 1) or the call fails with ScoreOverflowError
   * @param options.meta metadata to store for the member (JSON, at most `metaMaxBytes`); omitted keeps the stored one
   * @param options.at the event's time (Unix ms) choosing the period buckets; default Redis server time. It may lie
   *   up to `graceMs` after a bucket's end (late events) and at most `clockToleranceMs` after server time.
   * @returns the first configured period's score, rank and whether it changed, plus every period's in `periods`
   * @throws InvalidArgumentError (nothing sent), ScoreOverflowError, PeriodClosedError, ClockSkewError (nothing
   *   written), RedisUnavailableError, ScriptError
   */
  async submit(member: string, score: number, options?: SubmitOptions<M>): Promise<SubmitResult> {
    const item = parseSubmit(this.#backend.settings, member, score, options);
    return instrument(this.#observer, this.#site("submit"), () => this.#backend.submit(item), {
      outcome: (r) => (r.updated ? "updated" : "unchanged"),
    });
  }

  /**
   * Submits up to {@link MAX_BATCH} scores in one round trip and one atomic script, applied in array order (a
   * member may appear several times). Either all are applied or, on an error, none.
   * @returns one result per submission, in order
   * @throws like {@link submit}; an invalid submission names its index (`items[3].score`)
   */
  async submitMany(items: ReadonlyArray<Submission<M>>): Promise<SubmitResult[]> {
    const checked = parseSubmissions(this.#backend.settings, items);
    return instrument(this.#observer, this.#site("submitMany", { items: checked.length }), () =>
      this.#backend.submitMany(checked),
    );
  }

  /**
   * A member's score, 1-based rank, metadata and the board's size on one period board.
   * @returns the standing, or `null` when the member is not on that board
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async rank(member: string, options?: BoardOptions): Promise<Standing<M> | null> {
    return this.#standing("rank", member, options);
  }

  /**
   * The member's percentile on one board: the share of the other members ranked below it (100 = first, 0 =
   * last; 100 when it is alone). One round trip.
   * @returns its standing with `percentile`, or `null` when the member is not on that board
   * @throws like {@link rank}
   */
  async percentile(member: string, options?: BoardOptions): Promise<PercentileResult<M> | null> {
    const standing = await this.#standing("percentile", member, options);
    if (standing === null) return null;
    const { rank, count } = standing;
    return { ...standing, percentile: count <= 1 ? 100 : (100 * (count - rank)) / (count - 1) };
  }

  /**
   * The first `n` entries (1 ≤ n ≤ {@link MAX_BATCH}) of one period board, best first, with metadata.
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async top(n: number, options?: BoardOptions): Promise<Entry<M>[]> {
    validate.positiveInteger("n", n, MAX_BATCH);
    return this.#range("top", 0, n - 1, options);
  }

  /**
   * Page `page` (1-based) of `size` entries (1 ≤ size ≤ {@link MAX_BATCH}) of one period board.
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async page(page: number, size: number, options?: BoardOptions): Promise<Entry<M>[]> {
    validate.positiveInteger("size", size, MAX_BATCH);
    validate.positiveInteger("page", page, Math.floor(2 ** 31 / size));
    return this.#range("page", (page - 1) * size, page * size - 1, options);
  }

  /**
   * The entries ranked within `radius` (0 ≤ radius ≤ {@link MAX_RADIUS}) above and below `member`, the member
   * included, in rank order ("me and the players around me"). Fewer near the ends of the board.
   * @returns the window, or `[]` when the member is not on the board
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async around(member: string, radius: number, options?: BoardOptions): Promise<Entry<M>[]> {
    const id = validate.string("member", member, { maxBytes: MAX_MEMBER_BYTES });
    validate.integer("radius", radius, { min: 0, max: MAX_RADIUS });
    const { period, at } = parseBoardOptions(options, this.periods);
    return instrument(this.#observer, this.#site("around", { period }), () =>
      this.#backend.around(id, radius, period, at),
    );
  }

  /**
   * The number of members on one period board.
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async count(options?: BoardOptions): Promise<number> {
    const { period, at } = parseBoardOptions(options, this.periods);
    return instrument(this.#observer, this.#site("count", { period }), () => this.#backend.count(period, at));
  }

  /**
   * Removes `member` from every board of this leaderboard (all-time and every period bucket still alive:
   * current ones and those within `graceMs` of their end) and deletes its metadata, in one script. The boards are
   * named by the local clock and checked against Redis server time: near a period boundary (or the expiry of the
   * oldest board) a clock off by more than `clockToleranceMs` could miss one, so the call removes nothing instead.
   * @returns whether the member was on any board
   * @throws InvalidArgumentError (nothing sent), ClockSkewError (nothing removed), RedisUnavailableError, ScriptError
   */
  async remove(member: string): Promise<boolean> {
    const id = validate.string("member", member, { maxBytes: MAX_MEMBER_BYTES });
    return instrument(this.#observer, this.#site("remove"), () => this.#backend.remove(id));
  }

  /**
   * Replaces the stored metadata of `member` (a renamed player's display name) without touching any score, on every
   * board at once (metadata is stored once per member). Only for a member the leaderboard knows: one that has
   * metadata or is on the all-time board or a period bucket still alive; for any other nothing is stored (nothing
   * would ever delete it). One round trip.
   * @returns whether the metadata was stored
   * @throws InvalidArgumentError (nothing sent) for a bad member or metadata that is not JSON or over
   *   `metaMaxBytes`; ClockSkewError (nothing stored) for a member on none of the boards the local clock named when
   *   that clock is off by more than `clockToleranceMs` near a period boundary (see {@link remove});
   *   RedisUnavailableError, ScriptError
   */
  async setMeta(member: string, meta: M): Promise<boolean> {
    const id = validate.string("member", member, { maxBytes: MAX_MEMBER_BYTES });
    const json = checkMeta(this.#backend.settings, meta, "meta");
    return instrument(this.#observer, this.#site("setMeta"), () => this.#backend.setMeta(id, json), {
      outcome: (stored) => (stored ? "updated" : "missing"),
    });
  }

  /** rank() and percentile(): one rank script, reported under `op` (`"missing"` when the member is not there). */
  #standing(op: string, member: string, options: BoardOptions | undefined): Promise<Standing<M> | null> {
    const id = validate.string("member", member, { maxBytes: MAX_MEMBER_BYTES });
    const { period, at } = parseBoardOptions(options, this.periods);
    return instrument(this.#observer, this.#site(op, { period }), () => this.#backend.standing(id, period, at), {
      outcome: (r) => (r === null ? "missing" : "ok"),
    });
  }

  /** top() and page(): one range script, reported under `op`. */
  #range(op: string, start: number, stop: number, options: BoardOptions | undefined): Promise<Entry<M>[]> {
    const { period, at } = parseBoardOptions(options, this.periods);
    return instrument(this.#observer, this.#site(op, { period }), () => this.#backend.range(start, stop, period, at));
  }

  #site(op: string, attributes?: { period: Period } | { items: number }): OperationSite {
    return { primitive: "leaderboard", op, name: this.name, attributes };
  }
}
