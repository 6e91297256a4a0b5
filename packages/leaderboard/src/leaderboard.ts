import {
  Batcher,
  type BatchOptions,
  type BatchOutcome,
  batchSettings,
  type CoordisObserver,
  DEFAULT_PREFIX,
  type EntityKeys,
  entityKeys,
  InvalidArgumentError,
  notifyOperation,
  type RedisClient,
  runScriptDynamic,
  type ScriptDef,
  ScriptError,
  validate,
  validatePrefix,
} from "@coordis/core";
import { ClockSkewError, PeriodClosedError, ScoreOverflowError } from "./errors.js";
import { PERIODS, type Period, type PeriodBucket, periodBucket } from "./periods.js";
import { leaderboardScripts } from "./scripts.generated.js";

/** How a submit combines a new score with the member's current one. */
export type UpdatePolicy = "best" | "replace" | "increment";
/** `desc`: higher scores rank first (points); `asc`: lower scores rank first (lap times). */
export type Order = "desc" | "asc";

/** Longest member id, in UTF-8 bytes. */
export const MAX_MEMBER_BYTES = 512;
/** Default bound of one member's metadata, in UTF-8 bytes of its JSON. */
export const DEFAULT_META_MAX_BYTES = 1024;
/** Largest `metaMaxBytes` a leaderboard accepts. */
export const MAX_META_BYTES = 64 * 1024;
/** Most entries one `top`/`page` call returns, and most submissions in one `submitMany`. */
export const MAX_BATCH = 1000;
/** Largest `radius` of `around` (the window holds at most `2 × radius + 1` entries). */
export const MAX_RADIUS = 500;
/**
 * Largest magnitude of an `increment` amount and of any score an increment produces: 2^53 − 1
 * (`Number.MAX_SAFE_INTEGER`). Beyond it doubles skip integers, and a sum that passed 2^53 can round back onto it.
 */
export const MAX_INCREMENT_SCORE = Number.MAX_SAFE_INTEGER;
/** Default time a period board lives on after its period ended: 7 days. */
export const DEFAULT_GRACE_MS = 7 * 86_400_000;
/** Default clock disagreement tolerated between this process and Redis: 5 minutes. */
export const DEFAULT_CLOCK_TOLERANCE_MS = 5 * 60_000;

/** Options of {@link Leaderboard}. All instances that share a name must use the same options. */
export interface LeaderboardOptions {
  /** Rank order; default `"desc"` (highest score first). */
  order?: Order;
  /** Update policy; default `"best"` (keep the better of old and new). */
  update?: UpdatePolicy;
  /** Boards every submit updates, in this order; the first is the default of queries. Default `["all"]`. */
  periods?: readonly Period[];
  /** Tie order on equal scores; only `"earliest-first"`: who reached the score first ranks higher. */
  ties?: "earliest-first";
  /** Offset of the leaderboard's local time from UTC in minutes (−840..840); moves the day boundary. Default 0. */
  timeZoneOffsetMinutes?: number;
  /** How long (ms) a period board lives after its period ended, for late submits and "yesterday" queries. Default 7 days, at most 90 days. */
  graceMs?: number;
  /** Clock disagreement (ms) tolerated between this process and Redis near period boundaries (0..1 h). Default 5 min. */
  clockToleranceMs?: number;
  /** Largest metadata of one member, UTF-8 bytes of its JSON (1..65536). Default 1024. */
  metaMaxBytes?: number;
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
  /** Receives one operation event per call. */
  observer?: CoordisObserver;
  /**
   * Micro-batching of {@link Leaderboard.submit} (off by default): submits issued in the same event-loop turn (or
   * within `maxDelayMs`) go to Redis as one script call, applied in call order, each checked and applied on its
   * own (an error fails only its caller), each caller with its own result. `true` = `{ maxSize: 32,
   * maxDelayMs: 0 }`. See the README's "Micro-batching".
   */
  batch?: boolean | BatchOptions;
}

/** Which board a query reads. */
export interface BoardOptions {
  /** A configured period; default the first configured one. */
  period?: Period;
  /** Read the board of the bucket holding this instant (Unix ms, e.g. yesterday) instead of the current one. */
  at?: number;
}

/** One ranked member. */
export interface Entry<M = unknown> {
  /** The member id. */
  readonly member: string;
  /** Its score on the board read. */
  readonly score: number;
  /** 1-based rank; equal scores rank by arrival (earliest first), so ranks are unique. */
  readonly rank: number;
  /** The member's metadata, or `null` when none was stored. */
  readonly meta: M | null;
}

/** A member's standing as returned by {@link Leaderboard.rank}: an entry plus the board's size. */
export interface Standing<M = unknown> extends Entry<M> {
  /** Number of members on the board. */
  readonly count: number;
}

/** A member's percentile as returned by {@link Leaderboard.percentile}. */
export interface PercentileResult<M = unknown> extends Standing<M> {
  /** Share (0..100) of the other members ranked below this one: 100 for the leader, 0 for the last. */
  readonly percentile: number;
}

/** The outcome of a submit on one period board. */
export interface PeriodResult {
  /** The bucket id (`"all"`, `"2026-11-26"`, `"2026-W48"`, `"2026-11"`). */
  readonly bucket: string;
  /** The member's score on this board after the submit. */
  readonly score: number;
  /** The member's 1-based rank on this board after the submit. */
  readonly rank: number;
  /** Whether the submit changed the member's score (or added it). */
  readonly updated: boolean;
}

/** The outcome of a submit: the first configured period's result at the top level, every period in `periods`. */
export interface SubmitResult extends PeriodResult {
  /** Result per configured period. */
  readonly periods: Readonly<Partial<Record<Period, PeriodResult>>>;
}

/** One submission of {@link Leaderboard.submitMany}. */
export interface Submission<M = unknown> {
  /** The member id (1–512 bytes of UTF-8). */
  member: string;
  /** A finite number; with `increment` the amount to add. */
  score: number;
  /** Metadata to store for the member (replaces the stored one); omitted keeps what is stored. */
  meta?: M;
  /** The event's own time (Unix ms); picks the period buckets. Default Redis server time. */
  at?: number;
}

interface Board {
  readonly bucket: PeriodBucket;
  readonly zset: string;
  readonly index: string;
}

type Reply = string | number | null;
type CheckedSubmission = ReturnType<Leaderboard["checkSubmission"]>;
// biome-ignore lint/suspicious/noExplicitAny: the generated defs carry tuple types; the variadic runner erases them.
type AnyScript = ScriptDef<any, any, any>;

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

  private readonly redis: RedisClient;
  private readonly keys: EntityKeys;
  private readonly offsetMinutes: number;
  private readonly graceMs: number;
  private readonly toleranceMs: number;
  private readonly metaMaxBytes: number;
  private readonly observer: CoordisObserver | undefined;
  /** The last board built per period (see {@link Leaderboard.board}). */
  private readonly lastBoards = new Map<Period, Board>();
  private readonly metaKey: string;
  private readonly seqKey: string;
  private readonly batcher: Batcher<CheckedSubmission, SubmitResult> | undefined;

  /**
   * @param redis an ioredis client or cluster (e.g. from `connect()`)
   * @param name the leaderboard's name (1–512 bytes, no braces)
   * @throws InvalidArgumentError on a bad name or option
   */
  constructor(redis: RedisClient, name: string, options?: LeaderboardOptions) {
    this.redis = validate.redisClient("redis", redis);
    const opts = validate.options<LeaderboardOptions>("options", options);
    // An explicit null is invalid input, not "use the default": def() only falls back for undefined.
    const def = <T>(value: T | undefined, fallback: T): T => (value === undefined ? fallback : value);
    const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
    this.keys = entityKeys(prefix, "lb", name);
    this.metaKey = this.keys.sub("meta");
    this.seqKey = this.keys.sub("seq");
    this.name = name;
    this.order = validate.oneOf("options.order", def(opts.order, "desc"), ["desc", "asc"]);
    this.update = validate.oneOf("options.update", def(opts.update, "best"), ["best", "replace", "increment"]);
    validate.oneOf("options.ties", def(opts.ties, "earliest-first"), ["earliest-first"]);
    const periods = def(opts.periods, ["all"]);
    if (!Array.isArray(periods) || periods.length === 0) {
      throw new InvalidArgumentError("options.periods", "expected a non-empty array of periods");
    }
    periods.forEach((p, i) => {
      validate.oneOf(`options.periods[${i}]`, p, PERIODS);
    });
    if (new Set(periods).size !== periods.length) {
      throw new InvalidArgumentError("options.periods", "lists a period twice");
    }
    this.periods = Object.freeze([...periods]);
    this.offsetMinutes = validate.integer("options.timeZoneOffsetMinutes", def(opts.timeZoneOffsetMinutes, 0), {
      min: -840,
      max: 840,
    });
    this.graceMs = validate.durationMs("options.graceMs", def(opts.graceMs, DEFAULT_GRACE_MS), {
      max: 90 * 86_400_000,
    });
    this.toleranceMs = validate.durationMs(
      "options.clockToleranceMs",
      def(opts.clockToleranceMs, DEFAULT_CLOCK_TOLERANCE_MS),
      {
        min: 0,
        max: 3_600_000,
      },
    );
    this.metaMaxBytes = validate.integer("options.metaMaxBytes", def(opts.metaMaxBytes, DEFAULT_META_MAX_BYTES), {
      min: 1,
      max: MAX_META_BYTES,
    });
    this.observer = validate.observer("options.observer", opts.observer);
    const batch = batchSettings("options.batch", opts.batch);
    if (batch !== undefined) this.batcher = new Batcher(batch, (items) => this.sendBatch(items));
  }

  /** Micro-batching settings of submit, or `undefined` when submit is not batched. */
  get batch(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.batcher?.settings;
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
  async submit(member: string, score: number, options?: { meta?: M; at?: number }): Promise<SubmitResult> {
    const opts = validate.options<{ meta?: M; at?: number }>("options", options);
    const item = this.checkSubmission(member, score, opts.meta, opts.at, "");
    const started = performance.now();
    try {
      // Batched: one group, since every key of a leaderboard shares its hash tag.
      const first =
        this.batcher === undefined
          ? ((await this.runSubmit([item]))[0] as SubmitResult)
          : await this.batcher.add(0, item);
      this.report("submit", started, first.updated ? "updated" : "unchanged");
      return first;
    } catch (err) {
      this.report("submit", started, "error", err);
      throw err;
    }
  }

  /**
   * Submits up to {@link MAX_BATCH} scores in one round trip and one atomic script, applied in array order (a
   * member may appear several times). Either all are applied or, on an error, none.
   * @returns one result per submission, in order
   * @throws like {@link submit}; an invalid submission names its index (`items[3].score`)
   */
  async submitMany(items: ReadonlyArray<Submission<M>>): Promise<SubmitResult[]> {
    if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH) {
      throw new InvalidArgumentError("items", `expected an array of 1 to ${MAX_BATCH} submissions`);
    }
    const checked = items.map((raw, i) => {
      const it = validate.options<Submission<M>>(`items[${i}]`, raw);
      return this.checkSubmission(it.member, it.score, it.meta, it.at, `items[${i}].`);
    });
    const started = performance.now();
    try {
      const results = await this.runSubmit(checked);
      this.report("submitMany", started, "ok", undefined, { items: results.length });
      return results;
    } catch (err) {
      this.report("submitMany", started, "error", err);
      throw err;
    }
  }

  /**
   * A member's score, 1-based rank, metadata and the board's size on one period board.
   * @returns the standing, or `null` when the member is not on that board
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async rank(member: string, options?: BoardOptions): Promise<Standing<M> | null> {
    return this.standing("rank", member, options);
  }

  /** rank() and percentile(): one rank script, reported under `op`. */
  private async standing(op: string, member: string, options: BoardOptions | undefined) {
    const id = validate.string("member", member, { maxBytes: MAX_MEMBER_BYTES });
    const { period, at, boards } = this.boardsFor(options);
    return this.query(op, period, async (): Promise<Standing<M> | null> => {
      const reply = (await this.run(
        leaderboardScripts.rank,
        [this.metaKey, ...pairs(boards)],
        [this.order, at, boards.length, id, ...ranges(boards)],
      )) as Reply[];
      if (reply.length === 0) return null;
      return {
        member: id,
        score: toScore(reply[0]),
        rank: Number(reply[1]),
        count: Number(reply[2]),
        meta: this.parseMeta(reply[3]),
      };
    });
  }

  /**
   * The member's percentile on one board: the share of the other members ranked below it (100 = first, 0 =
   * last; 100 when it is alone). One round trip.
   * @returns its standing with `percentile`, or `null` when the member is not on that board
   * @throws like {@link rank}
   */
  async percentile(member: string, options?: BoardOptions): Promise<PercentileResult<M> | null> {
    const standing = await this.standing("percentile", member, options);
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
    return this.range("top", 0, n - 1, options);
  }

  /**
   * Page `page` (1-based) of `size` entries (1 ≤ size ≤ {@link MAX_BATCH}) of one period board.
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async page(page: number, size: number, options?: BoardOptions): Promise<Entry<M>[]> {
    validate.positiveInteger("size", size, MAX_BATCH);
    validate.positiveInteger("page", page, Math.floor(2 ** 31 / size));
    return this.range("page", (page - 1) * size, page * size - 1, options);
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
    const { period, at, boards } = this.boardsFor(options);
    return this.query("around", period, async () => {
      const reply = (await this.run(
        leaderboardScripts.around,
        [this.metaKey, ...pairs(boards)],
        [this.order, at, boards.length, id, radius, ...ranges(boards)],
      )) as Reply[];
      if (reply.length === 0) return [];
      return this.entries(reply, 2, Number(reply[0]));
    });
  }

  /**
   * The number of members on one period board.
   * @throws InvalidArgumentError (nothing sent), ClockSkewError, RedisUnavailableError, ScriptError
   */
  async count(options?: BoardOptions): Promise<number> {
    const { period, at, boards } = this.boardsFor(options);
    return this.query("count", period, async () =>
      Number(
        await this.run(
          leaderboardScripts.count,
          boards.map((b) => b.zset),
          [at, boards.length, ...ranges(boards)],
        ),
      ),
    );
  }

  /**
   * Removes `member` from every board of this leaderboard (all-time and every period bucket still alive:
   * current ones and those within `graceMs` of their end) and deletes its metadata, in one script.
   * @returns whether the member was on any board
   * @throws InvalidArgumentError (nothing sent), RedisUnavailableError, ScriptError
   */
  async remove(member: string): Promise<boolean> {
    const id = validate.string("member", member, { maxBytes: MAX_MEMBER_BYTES });
    const boards: Board[] = [];
    const now = Date.now();
    for (const period of this.periods) {
      if (period === "all") {
        boards.push(this.board(periodBucket("all", 0)));
        continue;
      }
      // Every bucket that may still exist: from the newest the server may be in, back to the oldest whose end is
      // within graceMs (+ tolerance) of now.
      // (A submit's `at` may run clockToleranceMs ahead of server time, which may run that far ahead of ours.)
      let bucket = periodBucket(period, now + 2 * this.toleranceMs, this.offsetMinutes);
      while (bucket.endMs + this.graceMs + this.toleranceMs > now) {
        boards.push(this.board(bucket));
        bucket = periodBucket(period, bucket.startMs - 1, this.offsetMinutes);
      }
    }
    return this.query("remove", undefined, async () => {
      const removed = await this.run(leaderboardScripts.remove, [this.metaKey, ...pairs(boards)], [id]);
      return Number(removed) > 0;
    });
  }

  // ---- internals ----

  private checkSubmission(member: unknown, score: unknown, meta: unknown, at: unknown, path: string) {
    const id = validate.string(`${path}member`, member, { maxBytes: MAX_MEMBER_BYTES });
    let value = validate.finiteNumber(`${path}score`, score);
    if (this.update === "increment" && Math.abs(value) > MAX_INCREMENT_SCORE) {
      throw new InvalidArgumentError(`${path}score`, `an increment must lie within ±(2^53 - 1), got ${value}`);
    }
    value += 0; // -0 -> 0
    let metaJson = "";
    if (meta !== undefined) {
      try {
        metaJson = JSON.stringify(meta) ?? "";
      } catch (err) {
        throw new InvalidArgumentError(`${path}meta`, `must be JSON-serialisable (${(err as Error).message})`);
      }
      if (metaJson === "") throw new InvalidArgumentError(`${path}meta`, "must be JSON-serialisable");
      const bytes = Buffer.byteLength(metaJson, "utf8");
      if (bytes > this.metaMaxBytes) {
        throw new InvalidArgumentError(
          `${path}meta`,
          `is ${bytes} bytes of JSON, at most ${this.metaMaxBytes} allowed`,
        );
      }
    }
    const when = at === undefined ? undefined : validate.integer(`${path}at`, at, { min: 0, max: 8.64e15 });
    return { member: id, score: value, metaJson, at: when };
  }

  /** The KEYS, ARGV and candidate boards of a submit (or submit-batch) script call for `items`. */
  private submitCall(items: readonly CheckedSubmission[]) {
    const boards = new Map<string, { board: Board; period: number }>();
    const now = Date.now();
    const periods = this.periods;
    for (const item of items) {
      for (let p = 0; p < periods.length; p++) {
        for (const bucket of this.candidates(periods[p] as Period, item.at, now)) {
          const board = this.board(bucket);
          if (!boards.has(board.zset)) boards.set(board.zset, { board, period: p + 1 });
        }
      }
    }
    const keys = [this.metaKey, this.seqKey];
    const args: (string | number)[] = [this.update, this.order, periods.length, boards.size, items.length];
    args.push(this.toleranceMs);
    const list: Board[] = [];
    for (const { board, period } of boards.values()) {
      keys.push(board.zset, board.index);
      const expireAt = board.bucket.period === "all" ? 0 : board.bucket.endMs + this.graceMs;
      args.push(period, board.bucket.startMs, board.bucket.endMs, expireAt);
      list.push(board);
    }
    for (const item of items) args.push(item.member, String(item.score), item.metaJson, item.at ?? "");
    return { keys, args, list };
  }

  private async runSubmit(items: CheckedSubmission[]): Promise<SubmitResult[]> {
    const { keys, args, list } = this.submitCall(items);
    const reply = (await this.run(leaderboardScripts.submit, keys, args)) as Reply[][];
    return reply.map((row) => this.submitResult(row, list));
  }

  /** Sends one micro-batch of submits as one submit-batch script call; each item succeeds or fails on its own. */
  private async sendBatch(items: readonly CheckedSubmission[]): Promise<BatchOutcome<SubmitResult>[]> {
    const { keys, args, list } = this.submitCall(items);
    let reply: Array<[ok: number, result: Reply[] | string]>;
    try {
      reply = await runScriptDynamic(this.redis, leaderboardScripts.submitBatch, keys, args);
    } catch (err) {
      throw mapError(err);
    }
    return reply.map(([ok, result]): BatchOutcome<SubmitResult> => {
      if (ok === 1) return { ok: true, value: this.submitResult(result as Reply[], list) };
      const error = mapError(new ScriptError(leaderboardScripts.submit.name, String(result)));
      return { ok: false, error: error as Error };
    });
  }

  /** One item's row of a submit reply (per period: score, rank, updated, board index) as a SubmitResult. */
  private submitResult(row: Reply[], list: Board[]): SubmitResult {
    const periods: Partial<Record<Period, PeriodResult>> = {};
    for (let p = 0; p < this.periods.length; p++) {
      // The script reports which candidate board (1-based, in KEYS order) held the item's time.
      const board = list[Number(row[4 * p + 3]) - 1];
      periods[this.periods[p] as Period] = {
        bucket: board?.bucket.id ?? "?",
        score: toScore(row[4 * p]),
        rank: Number(row[4 * p + 1]),
        updated: Number(row[4 * p + 2]) === 1,
      };
    }
    const first = periods[this.periods[0] as Period] as PeriodResult;
    return { ...first, periods };
  }

  /** The buckets a call may touch for `period`: the exact one for `at`, else those within the clock tolerance. */
  private candidates(period: Period, at: number | undefined, now: number): readonly PeriodBucket[] {
    if (period === "all") return ALL_BUCKETS;
    if (at !== undefined) return [periodBucket(period, at, this.offsetMinutes)];
    const out: PeriodBucket[] = [];
    for (const t of [now - this.toleranceMs, now, now + this.toleranceMs]) {
      const b = periodBucket(period, t, this.offsetMinutes);
      if (!out.some((o) => o.id === b.id)) out.push(b);
    }
    return out;
  }

  private board(bucket: PeriodBucket): Board {
    // Most calls hit the board of the current bucket: reuse its keys while the bucket stays the same.
    const last = this.lastBoards.get(bucket.period);
    if (last !== undefined && last.bucket.id === bucket.id && last.bucket.startMs === bucket.startMs) return last;
    const zset = bucket.period === "all" ? this.keys.sub("all") : this.keys.sub(bucket.period, bucket.id);
    const board = { bucket, zset, index: `${zset}:idx` };
    this.lastBoards.set(bucket.period, board);
    return board;
  }

  private boardsFor(options: BoardOptions | undefined) {
    const opts = validate.options<BoardOptions>("options", options);
    const period =
      opts.period === undefined ? (this.periods[0] as Period) : validate.oneOf("options.period", opts.period, PERIODS);
    if (!this.periods.includes(period)) {
      throw new InvalidArgumentError("options.period", `"${period}" is not a configured period of this leaderboard`);
    }
    const at = opts.at === undefined ? undefined : validate.integer("options.at", opts.at, { min: 0, max: 8.64e15 });
    const boards = this.candidates(period, at, Date.now()).map((b) => this.board(b));
    return { period, at: at ?? "", boards };
  }

  private async range(op: string, start: number, stop: number, options: BoardOptions | undefined) {
    const { period, at, boards } = this.boardsFor(options);
    return this.query(op, period, async () => {
      const reply = (await this.run(
        leaderboardScripts.range,
        [this.metaKey, ...pairs(boards)],
        [this.order, at, boards.length, start, stop, ...ranges(boards)],
      )) as Reply[];
      return this.entries(reply, 1, start);
    });
  }

  private entries(reply: Reply[], from: number, firstRank: number): Entry<M>[] {
    const out: Entry<M>[] = [];
    for (let i = from, rank = firstRank + 1; i + 2 < reply.length; i += 3, rank++) {
      out.push({ member: String(reply[i]), score: toScore(reply[i + 1]), rank, meta: this.parseMeta(reply[i + 2]) });
    }
    return out;
  }

  private parseMeta(raw: Reply | undefined): M | null {
    if (raw === null || raw === undefined || raw === "") return null;
    return JSON.parse(String(raw)) as M;
  }

  /** Runs a script whose KEYS count varies with the number of boards (`numkeys` = `keys.length`). */
  private run(script: AnyScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    // Every other operation goes after the submits already queued by this instance (order per member).
    this.batcher?.flush();
    return runScriptDynamic(this.redis, script, keys, args).catch(rethrowMapped);
  }

  private async query<T>(op: string, period: Period | undefined, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      this.report(op, started, result === null ? "missing" : "ok", undefined, period && { period });
      return result;
    } catch (err) {
      this.report(op, started, "error", err, period && { period });
      throw err;
    }
  }

  private report(
    op: string,
    started: number,
    outcome: string,
    error?: unknown,
    attributes?: Record<string, string | number>,
  ) {
    if (this.observer?.onOperation === undefined) return;
    notifyOperation(this.observer, {
      primitive: "leaderboard",
      op,
      outcome,
      durationMs: performance.now() - started,
      name: this.name,
      ...(attributes === undefined ? {} : { attributes }),
      ...(error instanceof Error ? { error } : {}),
    });
  }
}

function pairs(boards: Board[]): string[] {
  return boards.flatMap((b) => [b.zset, b.index]);
}

function ranges(boards: Board[]): number[] {
  return boards.flatMap((b) => [b.bucket.startMs, b.bucket.endMs]);
}

/** The candidates of the all-time period: its one bucket. */
const ALL_BUCKETS: readonly PeriodBucket[] = Object.freeze([periodBucket("all", 0)]);

function rethrowMapped(err: unknown): never {
  throw mapError(err);
}

function toScore(raw: Reply | undefined): number {
  return Number(raw) + 0;
}

function mapError(err: unknown): unknown {
  if (!(err instanceof ScriptError)) return err;
  const text = err.redisMessage;
  const detail = text.replace(/^.*?LB_[A-Z_]+ /, "");
  if (text.includes("LB_OVERFLOW")) return new ScoreOverflowError(`increment overflow: ${detail}`);
  if (text.includes("LB_PERIOD_CLOSED")) return new PeriodClosedError(`period closed: ${detail}`);
  if (text.includes("LB_CLOCK_SKEW")) return new ClockSkewError(`clock skew beyond clockToleranceMs: ${detail}`);
  return err;
}
