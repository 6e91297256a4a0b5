import {
  Batcher,
  type BatchOutcome,
  type EntityKeys,
  type RedisClient,
  runScriptDynamic,
  type ScriptDef,
  ScriptError,
  toCoordisError,
} from "@coordis/core";
import { type Board, Boards, pairs, ranges } from "./boards.js";
import { ClockSkewError, PeriodClosedError, ScoreOverflowError } from "./errors.js";
import type { CheckedSubmission, LeaderboardSettings } from "./options.js";
import type { Period } from "./periods.js";
import type { Entry, PeriodResult, Standing, SubmitResult } from "./results.js";
import { leaderboardScripts } from "./scripts.generated.js";

type Reply = string | number | null;

/**
 * What talks to Redis for a {@link Leaderboard}: builds each script call's KEYS and ARGV (the fixed keys plus the
 * candidate boards), runs it (submits through the micro-batcher when batching is on), maps the reply to results and
 * the scripts' errors to the package's error classes. Arguments arrive validated.
 */
export class LeaderboardBackend<M> {
  /** The validated options of the leaderboard. */
  readonly settings: LeaderboardSettings;
  readonly #redis: RedisClient;
  readonly #boards: Boards;
  readonly #metaKey: string;
  readonly #seqKey: string;
  readonly #batcher: Batcher<CheckedSubmission, SubmitResult> | undefined;

  constructor(redis: RedisClient, keys: EntityKeys, settings: LeaderboardSettings) {
    this.#redis = redis;
    this.settings = settings;
    this.#boards = new Boards(keys, settings);
    this.#metaKey = keys.sub("meta");
    this.#seqKey = keys.sub("seq");
    if (settings.batch !== undefined) {
      this.#batcher = new Batcher(settings.batch, (items) => this.#sendBatch(items));
    }
  }

  /** Micro-batching settings of submit, or `undefined` when submit is not batched. */
  get batchSettings(): { readonly maxSize: number; readonly maxDelayMs: number } | undefined {
    return this.#batcher?.settings;
  }

  /** One submit: batched with the submits of the same tick when batching is on, else one script call. */
  async submit(item: CheckedSubmission): Promise<SubmitResult> {
    // Batched: one group, since every key of a leaderboard shares its hash tag.
    if (this.#batcher !== undefined) return this.#batcher.add(0, item);
    return (await this.submitMany([item]))[0] as SubmitResult;
  }

  /** Submits `items` in one script call, atomically, in order (after the submits already queued). */
  submitMany(items: readonly CheckedSubmission[]): Promise<SubmitResult[]> {
    this.#batcher?.flush();
    return this.#submitScript(items);
  }

  /** The submit script for `items`, atomically, in order. */
  async #submitScript(items: readonly CheckedSubmission[]): Promise<SubmitResult[]> {
    const { keys, args, list } = this.#submitCall(items, false);
    const reply = await runScriptDynamic(this.#redis, leaderboardScripts.submit, keys, args).catch(rethrowMapped);
    if (typeof reply === "string") {
      // One item on one board: "<score> <rank> <updated>".
      const [score, rank, updated] = reply.split(" ");
      return [this.#submitResult([score ?? "", rank ?? "", updated ?? "", 1], list, 0)];
    }
    // Else flat: 4 values per item and configured period.
    const width = 4 * this.settings.periods.length;
    return items.map((_, i) => this.#submitResult(reply, list, i * width));
  }

  /** A member's standing on the board of `period` (at `at`), or `null` when it is not on it. */
  async standing(member: string, period: Period, at: number | undefined): Promise<Standing<M> | null> {
    const boards = this.#boards.forQuery(period, at);
    const args: (string | number)[] = [this.settings.order, member];
    args.push(...boardTime(period, at, boards));
    const reply = await this.#run(leaderboardScripts.rank, [this.#metaKey, ...pairs(boards)], args);
    if (reply === null) return null;
    // "<score>\0<rank>\0<count>" and "\0<meta>" when there is metadata (JSON holds no raw "\0").
    const [score, rank, count, meta] = reply.split("\0");
    return { member, score: toScore(score), rank: Number(rank), count: Number(count), meta: parseMeta<M>(meta) };
  }

  /** The entries at 0-based ranks `start..stop` of the board of `period`. */
  async range(start: number, stop: number, period: Period, at: number | undefined): Promise<Entry<M>[]> {
    const boards = this.#boards.forQuery(period, at);
    const keys = [this.#metaKey, ...boards.map((b) => b.zset)];
    const rest = boardTime(period, at, boards);
    const order = this.settings.order;
    const rows = joinedRows(await this.#run(leaderboardScripts.range, keys, [order, start, stop, ...rest]), false);
    if (rows !== undefined) return entries<M>(rows.fields, rows.metas, start);
    // An element holds a "\0": the rows again, as tables.
    const again = await this.#run(leaderboardScripts.range, keys, [`${order} rows`, start, stop, ...rest]);
    const [, fields, metas] = again as TableRows;
    return entries<M>(fields, metas, start);
  }

  /** The entries within `radius` ranks of `member` on the board of `period`; `[]` when it is not on it. */
  async around(member: string, radius: number, period: Period, at: number | undefined): Promise<Entry<M>[]> {
    const boards = this.#boards.forQuery(period, at);
    const keys = [this.#metaKey, ...pairs(boards)];
    const rest = boardTime(period, at, boards);
    const order = this.settings.order;
    const reply = await this.#run(leaderboardScripts.around, keys, [order, member, radius, ...rest]);
    if (reply === null) return [];
    const rows = joinedRows(reply, true);
    if (rows !== undefined) return entries<M>(rows.fields, rows.metas, rows.head);
    // An element holds a "\0": the rows again, as tables.
    const again = await this.#run(leaderboardScripts.around, keys, [`${order} rows`, member, radius, ...rest]);
    if (again === null) return [];
    const [head, fields, metas] = again as TableRows;
    return entries<M>(fields, metas, Number(head));
  }

  /** The number of members on the board of `period`. */
  async count(period: Period, at: number | undefined): Promise<number> {
    const boards = this.#boards.forQuery(period, at);
    const args = boardTime(period, at, boards);
    const reply = await this.#run(
      leaderboardScripts.count,
      boards.map((b) => b.zset),
      args,
    );
    return Number(reply);
  }

  /** Removes `member` from every board that may still exist and deletes its metadata; whether it was on one. */
  async remove(member: string): Promise<boolean> {
    const { boards, window } = this.#boards.alive();
    const args = window === undefined ? [member] : [member, ...window];
    const removed = await this.#run(leaderboardScripts.remove, [this.#metaKey, ...pairs(boards)], args);
    return Number(removed) > 0;
  }

  /** Replaces the metadata of a member the leaderboard knows; whether it did (see lua/leaderboard/set-meta.lua). */
  async setMeta(member: string, metaJson: string): Promise<boolean> {
    const { boards, window } = this.#boards.alive();
    const args = window === undefined ? [member, metaJson] : [member, metaJson, ...window];
    const stored = await this.#run(leaderboardScripts.setMeta, [this.#metaKey, ...boards.map((b) => b.index)], args);
    return Number(stored) === 1;
  }

  /** The KEYS, ARGV and candidate boards of a submit (or, `batch`, submit-batch) script call for `items`. */
  #submitCall(items: readonly CheckedSubmission[], batch: boolean) {
    const { periods, update, order, toleranceMs, graceMs } = this.settings;
    const boards = new Map<string, { board: Board; period: number }>();
    const now = Date.now();
    for (const item of items) {
      for (let p = 0; p < periods.length; p++) {
        for (const bucket of this.#boards.candidates(periods[p] as Period, item.at, now)) {
          const board = this.#boards.board(bucket);
          if (!boards.has(board.zset)) boards.set(board.zset, { board, period: p + 1 });
        }
      }
    }
    const keys = [this.#metaKey, this.#seqKey];
    const args: (string | number)[] = [update, order, toleranceMs];
    const list: Board[] = [];
    for (const { board, period } of boards.values()) {
      keys.push(board.zset, board.index);
      // The all-time board holds every time and never expires: its period index alone, negated.
      if (board.bucket.period === "all") args.push(-period);
      else args.push(period, board.bucket.startMs, board.bucket.endMs, board.bucket.endMs + graceMs);
      list.push(board);
    }
    if (
      (batch || items.length === 1) &&
      list.length === 1 &&
      list[0]?.bucket.period === "all" &&
      items.every((i) => i.metaJson === "" && i.at === undefined)
    ) {
      // The all-time board alone, no metadata, no time, one item or a batch: the short form (fewer arguments for
      // Redis to parse).
      const short: (string | number)[] = batch ? [update, order, ""] : [update, order];
      for (const item of items) short.push(item.member, String(item.score));
      return { keys, args: short, list };
    }
    for (const item of items) args.push(item.member, String(item.score), item.metaJson, item.at ?? "");
    return { keys, args, list };
  }

  /**
   * Sends one micro-batch of submits as one submit-batch script call; each item succeeds or fails on its own. A batch
   * of one (a submit alone in its event-loop turn) goes as the plain submit script: the same result, less work for
   * Redis.
   */
  async #sendBatch(items: readonly CheckedSubmission[]): Promise<BatchOutcome<SubmitResult>[]> {
    if (items.length === 1) return [{ ok: true, value: (await this.#submitScript(items))[0] as SubmitResult }];
    const { keys, args, list } = this.#submitCall(items, true);
    const reply = await runScriptDynamic(this.#redis, leaderboardScripts.submitBatch, keys, args).catch(rethrowMapped);
    // An item's error reply as an unbatched submit's would be: a refusal that means "not serving writes right now"
    // (NOREPLICAS, MISCONF, READONLY: the item wrote nothing) is RedisUnavailableError, not a ScriptError.
    const failed = (text: unknown): BatchOutcome<SubmitResult> => ({
      ok: false,
      error: mapError(toCoordisError(new Error(String(text)), leaderboardScripts.submit.name)) as Error,
    });
    if (list.length === 1) {
      // One board: flat, per item score text, rank, updated (or null, error text, 0).
      return items.map((_, i) => {
        const score = reply[3 * i];
        if (typeof score !== "string") return failed(reply[3 * i + 1]);
        const row = [score, reply[3 * i + 1] as Reply, reply[3 * i + 2] as Reply, 1];
        return { ok: true, value: this.#submitResult(row, list, 0) };
      });
    }
    if (!Array.isArray(reply[0])) {
      // One board per period: flat, per item and period score, rank, updated, board index (or null, error text...).
      const flat = reply as Reply[];
      const width = 4 * this.settings.periods.length;
      return items.map((_, i) => {
        if (typeof flat[i * width] !== "string") return failed(flat[i * width + 1]);
        return { ok: true, value: this.#submitResult(flat, list, i * width) };
      });
    }
    return (reply as [number, Reply[] | string][]).map(([ok, result]): BatchOutcome<SubmitResult> => {
      if (ok === 1 && typeof result !== "string") return { ok: true, value: this.#submitResult(result, list, 0) };
      return failed(result);
    });
  }

  /** One item's values of a submit reply from `at` on (per period: score, rank, updated, board index). */
  #submitResult(row: readonly Reply[], list: readonly Board[], at: number): SubmitResult {
    const configured = this.settings.periods;
    const periods: Partial<Record<Period, PeriodResult>> = {};
    for (let p = 0, i = at; p < configured.length; p++, i += 4) {
      // The script reports which candidate board (1-based, in KEYS order) held the item's time.
      const board = list[Number(row[i + 3]) - 1];
      periods[configured[p] as Period] = {
        bucket: board?.bucket.id ?? "?",
        score: toScore(row[i]),
        rank: Number(row[i + 1]),
        updated: Number(row[i + 2]) === 1,
      };
    }
    const first = periods[configured[0] as Period] as PeriodResult;
    return { ...first, periods };
  }

  /** Runs a script whose KEYS count varies with the number of boards (`numkeys` = `keys.length`). */
  #run<K extends readonly string[], A extends readonly string[], R>(
    script: ScriptDef<K, A, R>,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<R> {
    // Every other operation goes after the submits already queued by this instance (order per member).
    this.#batcher?.flush();
    return runScriptDynamic(this.#redis, script, keys, args).catch(rethrowMapped);
  }
}

/**
 * The arguments of a read that pick its board by time: `at` ("" = Redis server time) and the candidate boards'
 * [startMs, endMs) ranges; none for the all-time board, which holds every time (the script then reads no TIME).
 */
function boardTime(period: Period, at: number | undefined, boards: readonly Board[]): (number | "")[] {
  return period === "all" ? [] : [at ?? "", ...ranges(boards)];
}

/** Characters before the member in a board element: the 16-digit arrival prefix and ":". */
const ELEMENT_PREFIX = 17;

/** A read script's rows as tables (asked for with the order "<order> rows"): first rank (around), rows, metas. */
type TableRows = readonly [number | string, string[], (string | null)[]];

/**
 * The rows of a range or around reply: one string, the rows joined by "\0" and followed by the first rank (around,
 * `head`) and the number of row fields; with stored metadata, that string and the metas. `undefined` when the
 * fields before that number are not that many: an element holds a "\0" itself.
 */
function joinedRows(
  reply: unknown,
  head: boolean,
): { fields: string[]; metas: (string | null)[] | undefined; head: number } | undefined {
  const [joined, metas] = typeof reply === "string" ? [reply, undefined] : (reply as [string, (string | null)[]]);
  const fields = joined.split("\0");
  const count = Number(fields.pop());
  const first = head ? Number(fields.pop()) : 0;
  if (fields.length !== count) return undefined;
  return { fields, metas, head: first };
}

/**
 * Entries from ZRANGE WITHSCORES rows (element, score pairs; the element carries the arrival prefix) and the
 * metadata of each row's member (none stored: `undefined`), ranked from `firstRank + 1`.
 */
function entries<M>(
  rows: readonly string[],
  metas: readonly (string | null)[] | undefined,
  firstRank: number,
): Entry<M>[] {
  const out: Entry<M>[] = [];
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const n = i / 2;
    out.push({
      member: String(rows[i]).slice(ELEMENT_PREFIX),
      score: toScore(rows[i + 1]),
      rank: firstRank + 1 + n,
      meta: parseMeta<M>(metas?.[n]),
    });
  }
  return out;
}

function parseMeta<M>(raw: Reply | undefined): M | null {
  if (raw === null || raw === undefined || raw === "") return null;
  return JSON.parse(String(raw)) as M;
}

function toScore(raw: Reply | undefined): number {
  return Number(raw) + 0;
}

function rethrowMapped(err: unknown): never {
  throw mapError(err);
}

/** The package's error for a script's `LB_...` error reply; any other error as it is. */
function mapError(err: unknown): unknown {
  if (!(err instanceof ScriptError)) return err;
  const text = err.redisMessage;
  const detail = text.replace(/^.*?LB_[A-Z_]+ /, "");
  if (text.includes("LB_OVERFLOW")) return new ScoreOverflowError(`increment overflow: ${detail}`);
  if (text.includes("LB_PERIOD_CLOSED")) return new PeriodClosedError(`period closed: ${detail}`);
  if (text.includes("LB_CLOCK_SKEW")) return new ClockSkewError(`clock skew beyond clockToleranceMs: ${detail}`);
  return err;
}
