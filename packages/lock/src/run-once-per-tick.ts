import { hostname } from "node:os";
import { performance } from "node:perf_hooks";
import {
  type CoordisObserver,
  DEFAULT_PREFIX,
  DurabilityError,
  type DurabilityOptions,
  entityKeys,
  InvalidArgumentError,
  isClosed,
  notifyEvent,
  type OperationSite,
  type RedisClient,
  RedisUnavailableError,
  randomToken,
  reportOperation,
  runScript,
  runScriptDurable,
  runScriptSource,
  undoUntilAnswered,
  validate,
  validateName,
  validatePrefix,
} from "@coordis/core";
import { LeaseLostError } from "./errors.js";
import { driftMs, LeaseImpl } from "./lease.js";
import { DEFAULT_DRIFT_FACTOR, parseCommon, TOKEN_BYTES } from "./options.js";
import { lockScripts } from "./scripts.generated.js";

/** Default lifetime of a tick record: 7 days (a replica arriving later than that would run the tick again). */
export const DEFAULT_RECORD_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Default number of finished runs kept per job. */
export const DEFAULT_HISTORY_LIMIT = 100;
/** Most finished runs kept per job. */
export const MAX_HISTORY_LIMIT = 10_000;
const MAX_ERROR_CHARS = 1_000;
const TICK_KEYS = [
  "ttlMs",
  "retryOnError",
  "recordTtlMs",
  "historyLimit",
  "owner",
  "prefix",
  "observer",
  "durability",
] as const;
const HISTORY_KEYS = ["limit", "prefix"] as const;

/** Options of {@link runOncePerTick}. */
export interface RunOncePerTickOptions {
  /** Lease time to live of the run, ms; extended every `ttlMs / 3` while `fn` runs. Default 30 000. */
  ttlMs?: number;
  /**
   * false (default): a tick whose run failed — `fn` threw, or its runner vanished and its lease expired — is never
   * run again (at most once). true: another replica (or a later call) may claim it and run it again.
   */
  retryOnError?: boolean;
  /**
   * How long the tick record is kept after the run finished (or its lease ended), ms; must exceed the spread of
   * replicas' clocks and schedules. While a run holds the tick the record is kept at least this long past the lease's
   * end. The job's history (see {@link tickHistory}) is kept this long after its last finished run. Default 7 days.
   */
  recordTtlMs?: number;
  /** How many finished runs the job's history keeps (1–10 000). Default 100. */
  historyLimit?: number;
  /** Id of this replica in the record and history. Default `<hostname>:<pid>`. */
  owner?: string;
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
  /**
   * Receives one `tick` operation per call (outcome ran-ok, ran-failed, ran-lost, skipped or error), `lease-lost`
   * and `tick-not-recorded` events.
   */
  observer?: CoordisObserver;
  /**
   * Opt-in: the claim counts only once `replicas` replicas acknowledged it (`WAIT` behind the claim script, same
   * round trip; with `aof`, `WAITAOF` on Redis ≥ 7.2), within `timeoutMs` (below `ttlMs` and the client's command
   * timeout). A claim not confirmed in time is undone and the call rejects with `DurabilityError` without calling
   * `fn`; the tick can be claimed again. Each lease extension is confirmed the same way (an unconfirmed one counts as
   * a failed extension). The finish is not waited for. Default: none (asynchronous replication).
   */
  durability?: DurabilityOptions;
}

/** What the running `fn` gets. */
export interface TickContext {
  /** The job. */
  readonly job: string;
  /** The tick, as a number (a Date becomes its epoch ms). */
  readonly tick: number;
  /** This replica's owner id. */
  readonly owner: string;
  /** Strictly increasing per job across claims: a fencing token for what the run writes. */
  readonly fence: number;
  /** Aborts with `LeaseLostError` when the run's lease is lost (its extension failed or it expired). */
  readonly signal: AbortSignal;
}

/** The outcome of {@link runOncePerTick} on this replica. */
export interface TickResult<T> {
  /** Whether `fn` ran here. */
  readonly ran: boolean;
  /** What `fn` returned, when it ran here. */
  readonly result?: T;
  /**
   * The tick's state: `ok` (ran successfully, here or elsewhere), `failed` (ran and threw), `running` (another
   * replica is running it now), `abandoned` (its runner's lease expired without a result; not retried without
   * `retryOnError`).
   */
  readonly state: "ok" | "failed" | "running" | "abandoned";
  /** The replica that ran (or is running) the tick. */
  readonly owner: string;
}

/** One finished run in a job's history. */
export interface TickRecord {
  /** The tick that ran. */
  readonly tick: number;
  /** The replica that ran it (`options.owner`). */
  readonly owner: string;
  /** The run's fence (strictly increasing per job across claims). */
  readonly fence: number;
  /** 1 for the first run of the tick, 2+ for retries (`retryOnError`). */
  readonly attempt: number;
  /** Redis server time, epoch ms. */
  readonly startMs: number;
  /** Redis server time, epoch ms. */
  readonly endMs: number;
  /** Whether `fn` returned without throwing. */
  readonly ok: boolean;
  /** The error message of a failed run. */
  readonly error?: string;
}

function parseTick(tick: unknown): number {
  if (tick instanceof Date) {
    const ms = tick.getTime();
    if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError("tick", "expected a valid Date after 1970");
    return ms;
  }
  return validate.integer("tick", tick, { min: 0 });
}

/**
 * Runs `fn` at most once per `job` + `tick` across every replica that calls it, even when a slower replica (or one
 * whose clock is behind) arrives after the first one finished: the first caller claims the tick in a record kept for
 * `recordTtlMs`, runs `fn` under a lease that is extended every `ttlMs / 3`, and records the outcome (owner, start,
 * end, ok/error) in the job's bounded history (see {@link tickHistory}). Others return `{ ran: false }`.
 *
 * When `fn` throws, the tick is recorded failed and the error is rethrown here; without `retryOnError` it is never
 * run again. Round trips: one to claim, one per extension, one to record (tried again while Redis does not answer,
 * until the lease's validity ends).
 *
 * A run that loses the tick — its lease expired (a pause, Redis unreachable for longer than `ttlMs`) and another
 * replica claimed the tick (`retryOnError`) — is not recorded: `ctx.signal` aborts when the loss is noticed, and
 * when `fn` returns anyway this call rejects with `LeaseLostError` (reason `"not-held"`) instead of reporting `"ok"`,
 * since the tick may have run elsewhere too. A run whose lease expired but whose tick nobody claimed meanwhile is
 * still recorded. When `fn` threw, its own error is rethrown either way.
 *
 * @param redis an ioredis `Redis` or `Cluster`
 * @param job the job's name: 1–512 UTF-8 bytes, no `{` or `}`
 * @param tick the schedule tick: a non-negative integer (e.g. the scheduled epoch ms or a sequence number) or a Date
 * With `durability`, the claim is followed by `WAIT` in the same round trip; a claim the replicas did not confirm is
 * undone (one more round trip) and `fn` is not called.
 *
 * @throws InvalidArgumentError before any Redis call; RedisUnavailableError; `fn`'s own error unchanged;
 *   LeaseLostError when `fn` returned but the run no longer held the tick (its outcome was not recorded), or
 *   (reason `"expired"`, `fn` not called, the claim undone) when the claim was answered after its lease's validity;
 *   DurabilityError when the claim was not confirmed by the replicas in time (`fn` was not called)
 */
export async function runOncePerTick<T>(
  redis: RedisClient,
  job: string,
  tick: number | Date,
  fn: (ctx: TickContext) => Promise<T> | T,
  options: RunOncePerTickOptions = {},
): Promise<TickResult<T>> {
  validate.redisClient("redis", redis);
  validateName(job, "job");
  const tickValue = parseTick(tick);
  validate.func("fn", fn);
  const o = validate.options<RunOncePerTickOptions>("options", options, TICK_KEYS);
  const { ttlMs, prefix, observer, durability } = parseCommon(o, [redis]);
  const retryOnError = o.retryOnError === undefined ? false : validate.boolean("options.retryOnError", o.retryOnError);
  const recordTtlMs =
    o.recordTtlMs === undefined
      ? DEFAULT_RECORD_TTL_MS
      : validate.durationMs("options.recordTtlMs", o.recordTtlMs, { min: 1000 });
  const historyLimit =
    o.historyLimit === undefined
      ? DEFAULT_HISTORY_LIMIT
      : validate.positiveInteger("options.historyLimit", o.historyLimit, MAX_HISTORY_LIMIT);
  const owner =
    o.owner === undefined
      ? `${hostname()}:${process.pid}`
      : validate.string("options.owner", o.owner, { maxBytes: 256 });
  if (recordTtlMs < ttlMs) throw new InvalidArgumentError("options.recordTtlMs", "must be at least options.ttlMs");

  const keys = entityKeys(prefix, "tick", job);
  const recordKey = keys.sub("t", String(tickValue));
  const historyKey = keys.sub("history");
  const token = randomToken(TOKEN_BYTES);
  const started = performance.now();
  const site: OperationSite = { primitive: "lock", op: "tick", name: job, attributes: { kind: "tick" } };
  const report = (outcome: string, error?: Error) => reportOperation(observer, site, started, outcome, error);
  const undo = () => runScriptSource(redis, lockScripts.tickUnclaim, [recordKey], [token]);
  /**
   * Undoes this call's claim (fn not called), sent again while Redis does not answer it, for as long as the record may
   * live (undoUntilAnswered): an undo lost in an outage left the claim "running", then "abandoned", run by nobody.
   */
  const unclaim = (): Promise<unknown> => {
    const first = runScript(redis, lockScripts.tickUnclaim, [recordKey], [token]);
    undoUntilAnswered(redis, undo, recordTtlMs, first);
    return first.catch(() => 0);
  };

  let claim: [claimed: number, state: string, fence: number, owner: string];
  try {
    const { reply, error } = await runScriptDurable(
      redis,
      lockScripts.tickClaim,
      [recordKey, keys.sub("fence")],
      [owner, token, ttlMs, recordTtlMs, retryOnError ? 1 : 0],
      durability,
    );
    // A claim the replicas did not confirm could vanish in a failover and the tick run elsewhere too: undo it (sent
    // again until Redis answers; until then the claim reads as running, then abandoned) and never run fn. A skipped
    // call wrote nothing, so it has nothing to confirm.
    if (reply[0] === 1 && error !== undefined) {
      await unclaim();
      throw error;
    }
    claim = reply;
  } catch (err) {
    // No answer (a command timeout, a dropped connection): Redis may still run the claim, late, and leave the tick
    // "running" under a token nobody holds, then "abandoned", so neither a retry of this call nor another replica
    // would run it. As for a lock's phantom grant, an undo of this token is queued behind the claim on the same
    // connection, and sent again until Redis answers it (an outage longer than the command timeout makes one attempt
    // fail too), for as long as the claim's record may live: fn was not called, so undoing the claim keeps at most once.
    // It goes as EVAL with the source: the undo is rarely run, so the server seldom has it cached (see runScriptSource).
    if (!(err instanceof DurabilityError)) undoUntilAnswered(redis, undo, recordTtlMs);
    report("error", err as Error);
    throw err;
  }
  const [claimed, state, fence, holder] = claim;
  if (claimed !== 1) {
    report("skipped");
    return { ran: false, state: state as TickResult<T>["state"], owner: holder };
  }

  const deadline = started + ttlMs - driftMs(ttlMs, DEFAULT_DRIFT_FACTOR);
  if (performance.now() >= deadline) {
    // The claim was answered after its lease's validity (a stalled server, a paused process), as an acquire can be:
    // fn would start with its signal aborted and its lease beyond extending, and another replica may claim the tick
    // (retryOnError). Like an acquire's late grant it is given back (undone as an unconfirmed claim is), fn not called.
    await unclaim();
    const late = new LeaseLostError(job, fence, "expired");
    report("error", late);
    throw late;
  }

  // The outcome is what release() records: the lease's release is the "finish" script.
  let outcome: { ok: boolean; error: string } = { ok: false, error: "not finished" };
  const lease = new LeaseImpl({
    kind: "tick",
    name: job,
    token,
    fence,
    ttlMs,
    driftFactor: DEFAULT_DRIFT_FACTOR,
    deadline,
    observer,
    backend: {
      extend: async (t, ttl) => {
        const extended = await runScriptDurable(
          redis,
          lockScripts.tickExtend,
          [recordKey],
          [t, ttl, recordTtlMs],
          durability,
        );
        // Extended on the primary but not confirmed: unknown, like an unanswered extension (the deadline stays).
        if (extended.reply === 1 && extended.error !== undefined) throw extended.error;
        return extended.reply === 1;
      },
      release: async (t) =>
        (await runScript(
          redis,
          lockScripts.tickFinish,
          [recordKey, historyKey],
          [t, outcome.ok ? 1 : 0, outcome.error, tickValue, historyLimit, recordTtlMs],
        )) === 1,
    },
  });
  lease.startAutoExtend();
  const ctx: TickContext = {
    job,
    tick: tickValue,
    owner,
    fence,
    get signal() {
      return lease.signal;
    },
  };
  let result: T;
  try {
    result = await fn(ctx);
  } catch (err) {
    lease.stopAutoExtend();
    outcome = { ok: false, error: errorText(err) };
    const recorded = await recordOutcome(lease, redis).catch(() => false);
    if (!recorded) reportLost(observer, job);
    report("ran-failed", err instanceof Error ? err : undefined);
    throw err;
  }
  lease.stopAutoExtend();
  outcome = { ok: true, error: "" };
  let recorded: boolean;
  try {
    recorded = await recordOutcome(lease, redis);
  } catch (err) {
    report("error", err as Error);
    throw err;
  }
  if (!recorded) {
    // Another replica claimed the tick after this run's lease expired (or the record is gone): this run did not
    // hold the tick throughout, its outcome is not recorded, and the tick may have run elsewhere too.
    reportLost(observer, job);
    const lost = new LeaseLostError(job, fence, "not-held");
    report("ran-lost", lost);
    throw lost;
  }
  report("ran-ok");
  return { ran: true, result, state: "ok", owner };
}

/**
 * What a failed run's record and history say about `err` (at most {@link MAX_ERROR_CHARS} characters). Never throws:
 * fn may throw any value, also one without a string form (a null-prototype object, an Error whose `message` getter
 * throws), and the run must still be recorded failed and that value rethrown.
 */
function errorText(err: unknown): string {
  return validate.thrownText(err, MAX_ERROR_CHARS);
}

/** First and longest pause between two attempts to record a run's outcome while Redis does not answer, ms. */
const RECORD_RETRY_FIRST_MS = 50;
const RECORD_RETRY_MAX_MS = 1_000;

/**
 * Records the run's outcome (the lease's release is the finish script). While Redis does not answer, it is tried
 * again until the lease's validity would end: a blip as `fn` returns does not turn a finished run into an error and,
 * later, an abandoned tick. The finish is safe to repeat (a finish of a record its token already finished answers
 * true), so a retry after an unanswered attempt that did run is no loss either. A client the application closed
 * (quit, disconnect) never answers again: no retry then (they kept the call, and the process, alive until the lease
 * ended).
 */
async function recordOutcome(lease: LeaseImpl, redis: RedisClient): Promise<boolean> {
  for (let delay = RECORD_RETRY_FIRST_MS; ; delay = Math.min(RECORD_RETRY_MAX_MS, delay * 2)) {
    try {
      return await lease.release();
    } catch (err) {
      const closed = isClosed(redis);
      if (!(err instanceof RedisUnavailableError) || closed || performance.now() + delay >= lease.validUntil) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

function reportLost(observer: CoordisObserver | undefined, job: string): void {
  notifyEvent(observer, {
    primitive: "lock",
    type: "tick-not-recorded",
    name: job,
    attributes: { kind: "tick" },
  });
}

/** Options of {@link tickHistory}. */
export interface TickHistoryOptions {
  /** How many entries, newest first (1–10 000). Default 20. */
  limit?: number;
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
}

/**
 * The newest finished runs of `job` (newest first), as recorded by {@link runOncePerTick}. One round trip.
 * @throws InvalidArgumentError before any Redis call; RedisUnavailableError
 */
export async function tickHistory(
  redis: RedisClient,
  job: string,
  options: TickHistoryOptions = {},
): Promise<TickRecord[]> {
  validate.redisClient("redis", redis);
  validateName(job, "job");
  const o = validate.options<TickHistoryOptions>("options", options, HISTORY_KEYS);
  const limit = o.limit === undefined ? 20 : validate.positiveInteger("options.limit", o.limit, MAX_HISTORY_LIMIT);
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(o.prefix, "options.prefix");
  const keys = entityKeys(prefix, "tick", job);
  const entries = await runScript(redis, lockScripts.tickHistory, [keys.sub("history")], [limit]);
  return entries.map((text) => {
    const e = JSON.parse(text) as Record<string, unknown>;
    return {
      tick: Number(e.tick),
      owner: String(e.owner),
      fence: Number(e.fence),
      attempt: Number(e.attempt),
      startMs: Number(e.startMs),
      endMs: Number(e.endMs),
      ok: e.ok === true,
      ...(typeof e.error === "string" ? { error: e.error } : {}),
    };
  });
}
