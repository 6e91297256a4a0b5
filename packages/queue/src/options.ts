import {
  type BatchOptions,
  type BatchSettings,
  batchSettings,
  type CoordisObserver,
  DEFAULT_PREFIX,
  type DurabilityOptions,
  InvalidArgumentError,
  validate,
  validatePrefix,
} from "@coordis/core";
import { type Codec, jsonCodec, jsonResultCodec, parseCodec } from "./codec.js";

/** Default attempts of a job, the first one included. */
export const DEFAULT_ATTEMPTS = 3;
/** Most attempts a job may have. */
export const MAX_ATTEMPTS = 1_000;
/** Lowest (last served) priority; 0, the default, is served first. */
export const MAX_PRIORITY = 9;
/** Default time a completed (or cancelled) job and its result are kept: 24 h. */
export const DEFAULT_RESULT_TTL_MS = 24 * 60 * 60 * 1000;
/** Default backoff between attempts: exponential from 1 s, at most 1 h, no jitter. */
export const DEFAULT_BACKOFF: Readonly<Required<Backoff>> = Object.freeze({
  type: "exponential",
  delayMs: 1_000,
  maxDelayMs: 60 * 60 * 1000,
  jitter: 0,
});
/** Longest job id and group name, UTF-8 bytes. */
export const MAX_ID_BYTES = 256;
/** Default largest encoded payload (and result): 512 KiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024;
/** Most jobs one `addMany` takes. */
export const MAX_ADD_MANY = 10_000;
/** Most partitions of one queue. */
export const MAX_PARTITIONS = 256;
/** Default retention: completed, cancelled and dead jobs kept per partition, and how long dead jobs are kept (7 days). */
export const DEFAULT_RETENTION: Readonly<Required<Retention>> = Object.freeze({
  completed: 10_000,
  dead: 10_000,
  deadAgeMs: 7 * 24 * 60 * 60 * 1000,
});

/** Retry delay between attempts. */
export interface Backoff {
  /** `fixed`: `delayMs` every time; `exponential`: `delayMs * 2^(attempt - 1)`. */
  type: "fixed" | "exponential";
  /** Base delay, ms (0 = retry at once). */
  delayMs: number;
  /** Cap of the delay, ms; default 1 h, or `delayMs` when that is longer (the cap never shortens `delayMs`). */
  maxDelayMs?: number;
  /** Up to this fraction (0–1) of each delay is taken off at random, spreading retries; default 0. */
  jitter?: number;
}

/** Options of one job (`add`, `addMany`, `schedule`, and a queue's `defaults`). */
export interface JobOptions {
  /**
   * The job's id (1–256 UTF-8 bytes). Adding an id that exists (waiting, delayed, running, dead and still retained,
   * or completed or cancelled within its `resultTtlMs` and still retained) answers `duplicate: true` and creates
   * nothing; once a completed or cancelled job is past its `resultTtlMs` or dropped by `retention` (beyond
   * `retention.completed` per partition, those whose `resultTtlMs` ends first go first; `get()` answers null), its id is free again. Default: 128
   * random bits as 22 base64url characters. With
   * `partitions`, the partition is chosen by a hash of the id, or of its `{tag}` when it has one (as Redis Cluster
   * does with keys).
   */
  id?: string;
  /** Run no earlier than this many ms after the add, by Redis server time (0 – 365 days). Default 0. */
  delayMs?: number;
  /** 0 (default, served first) to 9 (served last). FIFO within a priority. */
  priority?: number;
  /** Attempts, the first one included (1–1000). Default 3. */
  attempts?: number;
  /** Delay between attempts. Default exponential from 1 s, at most 1 h. */
  backoff?: Backoff;
  /**
   * Concurrency and rate limits of the workers' `groups` option apply per group name (1–256 bytes), within the job's
   * partition: with `partitions`, give the jobs of one group ids with the same `{tag}` to keep them under one limit.
   */
  group?: string;
  /** How long the completed (or cancelled) job and its result are kept, ms. Default 24 h. */
  resultTtlMs?: number;
}

/** How many finished jobs are kept per partition (the oldest go first), and how long dead ones are. */
export interface Retention {
  /**
   * Completed jobs kept (each also for at most its `resultTtlMs`): beyond it, those whose `resultTtlMs` ends first are
   * dropped, so a job of a shorter `resultTtlMs` than the ones kept can be dropped as it completes. The same cap applies
   * to cancelled ones. Default 10,000.
   */
  completed?: number;
  /** Dead jobs kept. Default 10,000. */
  dead?: number;
  /** How long a dead job is kept, ms. Default 7 days. */
  deadAgeMs?: number;
}

/** Options every queue client takes (`Queue` and `Worker` of one queue must agree on `partitions` and `codec`). */
export interface CommonOptions<T = unknown, R = unknown> {
  /** Key prefix; default `"coordis"`. */
  prefix?: string;
  /** Receives operation reports and events (see the package README). */
  observer?: CoordisObserver;
  /** Hash slots the queue is spread over (1–256; default 1). Every Queue and Worker of the queue must use the same. */
  partitions?: number;
  /**
   * Encodes job data (`data`) and decodes it; default {@link jsonCodec}: JSON, refusing data JSON would store as
   * something else (a Map, a Set, NaN, a BigInt...) with an InvalidArgumentError naming `data`.
   */
  codec?: Codec<T>;
  /** Encodes results; default JSON with its own rules (a NaN in a result is stored as null, a Map as `{}`). */
  resultCodec?: Codec<R>;
  /** Largest encoded payload or result, bytes (1 – 64 MiB); default 512 KiB. */
  maxPayloadBytes?: number;
  /** Retention of finished jobs (applied as jobs finish). */
  retention?: Retention;
}

/** Options of a `Queue`. */
export interface QueueOptions<T = unknown, R = unknown> extends CommonOptions<T, R> {
  /** Options applied to every job unless the add gives its own (an `id` is not allowed here). */
  defaults?: Omit<JobOptions, "id">;
  /**
   * Micro-batching of `add`: adds made in the same event-loop turn go to Redis as one script call per partition.
   * `true` (default), `false`, or `{ maxSize?, maxDelayMs? }`.
   */
  batch?: boolean | BatchOptions;
  /**
   * Opt-in durability of adds: after each add script call, wait until `replicas` replicas acknowledged it (`WAIT`;
   * with `aof`, also the AOF fsync through `WAITAOF` on Redis ≥ 7.2), within `timeoutMs` (below the client's command
   * timeout). An add that is not confirmed in time rejects with `DurabilityError`; the job was added on the primary
   * and may or may not survive a failover, so add it again with the same `id`: `duplicate: true` means it survived,
   * otherwise it is created again. Costs one more command (the wait) per add call, and the call's latency grows by the
   * replicas' acknowledgement time; micro-batched adds share one wait. Default: none (an add is acknowledged by the
   * primary alone).
   */
  durability?: DurabilityOptions;
}

/** Per-group limits, enforced at fetch time across every worker of the queue. */
export interface GroupLimits {
  /** Most jobs of one group running at once, fleet-wide (1–1,000,000). */
  concurrency?: number;
  /** Rate-limit rules per group (as `@coordis/ratelimit`'s `Rule`); one unit is taken per job started. */
  rateLimit?: ReadonlyArray<{
    name?: string;
    limit: number;
    windowMs: number;
    algorithm?: "fixed-window" | "sliding-window" | "token-bucket" | "gcra";
    burst?: number;
  }>;
}

/** Options of a `Worker`. */
export interface WorkerOptions<T = unknown, R = unknown> extends CommonOptions<T, R> {
  /** Handlers running at once in this worker (1–10,000). Default 1. */
  concurrency?: number;
  /** Lease of a running job, renewed every `leaseMs / 3` while its handler runs (1 s – 24 h). Default 30 s. */
  leaseMs?: number;
  /** Per-group concurrency and rate limits. */
  groups?: GroupLimits;
  /** Longest a waiting worker blocks on Redis before it looks again, ms (10 ms – 60 s). Default 2 s. */
  blockMs?: number;
  /** Fire the queue's schedules (default true). Any number of workers may: each run still makes one job. */
  schedules?: boolean;
}

/** The validated options shared by Queue and Worker. */
export interface ParsedCommon<T, R> {
  readonly prefix: string;
  readonly observer: CoordisObserver | undefined;
  readonly partitions: number;
  readonly codec: Codec<T>;
  readonly resultCodec: Codec<R>;
  readonly maxPayloadBytes: number;
  readonly retention: Readonly<Required<Retention>>;
}

/** A job's options as the add script takes them. */
export interface ParsedJob {
  readonly id: string | undefined;
  readonly delayMs: number;
  readonly priority: number;
  readonly attempts: number;
  readonly backoffType: 0 | 1 | 2;
  readonly backoffDelayMs: number;
  readonly backoffMaxMs: number;
  /** Per mille. */
  readonly jitter: number;
  readonly group: string;
  readonly resultTtlMs: number;
}

/** Throws when `raw` has a key outside `allowed` (a typo must not silently become a default). */
export function onlyKeys(argument: string, raw: object, allowed: readonly string[]): void {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) {
      throw new InvalidArgumentError(`${argument}.${key}`, `unknown option (expected one of ${allowed.join(", ")})`);
    }
  }
}

const COMMON_KEYS = [
  "prefix",
  "observer",
  "partitions",
  "codec",
  "resultCodec",
  "maxPayloadBytes",
  "retention",
] as const;
const JOB_KEYS = ["id", "delayMs", "priority", "attempts", "backoff", "group", "resultTtlMs"] as const;

/** Queue option keys. */
export const QUEUE_KEYS: readonly string[] = [...COMMON_KEYS, "defaults", "batch", "durability"];
/** Worker option keys. */
export const WORKER_KEYS: readonly string[] = [
  ...COMMON_KEYS,
  "concurrency",
  "leaseMs",
  "groups",
  "blockMs",
  "schedules",
];

// Group names and ids end up inside Lua strings split on NUL and newlines: no control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
const CONTROL = /[\u0000-\u001f\u007f]/;

/** How the ids of the jobs a schedule makes start (`{schedule:<name>}<run ms>`, keys.ts): reserved for them. */
export const SCHEDULE_ID_START = "{schedule:";

/** Validates a job id or group name: 1–256 UTF-8 bytes, no control characters. */
export function validateId(argument: string, value: unknown): string {
  const s = validate.string(argument, value, { minBytes: 1, maxBytes: MAX_ID_BYTES });
  if (CONTROL.test(s)) throw new InvalidArgumentError(argument, "must not contain control characters");
  return s;
}

/** Validates the options shared by Queue and Worker. @throws InvalidArgumentError */
export function parseCommon<T, R>(o: CommonOptions<T, R>, argument = "options"): ParsedCommon<T, R> {
  const prefix = o.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(o.prefix, `${argument}.prefix`);
  const observer = validate.observer(`${argument}.observer`, o.observer);
  const partitions = validate.optional(o.partitions, 1, (v) =>
    validate.positiveInteger(`${argument}.partitions`, v, MAX_PARTITIONS),
  );
  const codec = parseCodec<T>(`${argument}.codec`, o.codec) ?? (jsonCodec as Codec<T>);
  const resultCodec = parseCodec<R>(`${argument}.resultCodec`, o.resultCodec) ?? (jsonResultCodec as Codec<R>);
  const maxPayloadBytes = validate.optional(o.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES, (v) =>
    validate.positiveInteger(`${argument}.maxPayloadBytes`, v, 64 * 1024 * 1024),
  );
  const r = validate.options<Retention>(`${argument}.retention`, o.retention);
  onlyKeys(`${argument}.retention`, r, ["completed", "dead", "deadAgeMs"]);
  const retention = Object.freeze({
    completed: validate.optional(r.completed, DEFAULT_RETENTION.completed, (v) =>
      validate.integer(`${argument}.retention.completed`, v, { min: 0, max: 100_000_000 }),
    ),
    dead: validate.optional(r.dead, DEFAULT_RETENTION.dead, (v) =>
      validate.integer(`${argument}.retention.dead`, v, { min: 0, max: 100_000_000 }),
    ),
    deadAgeMs: validate.optional(r.deadAgeMs, DEFAULT_RETENTION.deadAgeMs, (v) =>
      validate.durationMs(`${argument}.retention.deadAgeMs`, v),
    ),
  });
  return { prefix, observer, partitions, codec, resultCodec, maxPayloadBytes, retention };
}

/** Validates a queue's `batch` option. */
export function parseBatch(argument: string, value: unknown): BatchSettings | undefined {
  return batchSettings(argument, value === undefined ? true : value);
}

/**
 * Validates job options on top of `base` (a queue's parsed defaults). `allowId`: whether `id` may be given.
 * @throws InvalidArgumentError
 */
export function parseJob(argument: string, raw: unknown, base: ParsedJob, allowId = true): ParsedJob {
  if (raw === undefined) return base;
  const o = validate.options<JobOptions>(argument, raw);
  onlyKeys(argument, o, allowId ? JOB_KEYS : JOB_KEYS.filter((k) => k !== "id"));
  const id = o.id === undefined ? undefined : validateId(`${argument}.id`, o.id);
  // The form of a schedule's run ids (keys.ts scheduledJobId): an id chosen by a producer (an idempotency key from a
  // client) could take a future run's place, and the run's own job would never be made.
  if (id?.startsWith(SCHEDULE_ID_START)) {
    throw new InvalidArgumentError(
      `${argument}.id`,
      `ids starting with "${SCHEDULE_ID_START}" are reserved for the jobs schedules make; choose another id`,
    );
  }
  const delayMs = validate.optional(o.delayMs, base.delayMs, (v) =>
    validate.durationMs(`${argument}.delayMs`, v, { min: 0 }),
  );
  const priority = validate.optional(o.priority, base.priority, (v) =>
    validate.integer(`${argument}.priority`, v, { min: 0, max: MAX_PRIORITY }),
  );
  const attempts = validate.optional(o.attempts, base.attempts, (v) =>
    validate.positiveInteger(`${argument}.attempts`, v, MAX_ATTEMPTS),
  );
  let { backoffType, backoffDelayMs, backoffMaxMs, jitter } = base;
  if (o.backoff !== undefined) {
    const b = validate.options<Backoff>(`${argument}.backoff`, o.backoff);
    onlyKeys(`${argument}.backoff`, b, ["type", "delayMs", "maxDelayMs", "jitter"]);
    const type = validate.oneOf(`${argument}.backoff.type`, b.type, ["fixed", "exponential"] as const);
    backoffType = type === "fixed" ? 1 : 2;
    backoffDelayMs = validate.durationMs(`${argument}.backoff.delayMs`, b.delayMs, { min: 0 });
    // The default cap bounds the growth of exponential delays; it never shortens `delayMs` itself (a fixed backoff
    // of 2 h waits 2 h every time, as its documentation promises).
    backoffMaxMs = validate.optional(b.maxDelayMs, Math.max(DEFAULT_BACKOFF.maxDelayMs, backoffDelayMs), (v) =>
      validate.durationMs(`${argument}.backoff.maxDelayMs`, v),
    );
    jitter = Math.round(
      validate.optional(b.jitter, 0, (v) =>
        validate.finiteNumber(`${argument}.backoff.jitter`, v, { min: 0, max: 1 }),
      ) * 1000,
    );
  }
  const group = o.group === undefined ? base.group : validateId(`${argument}.group`, o.group);
  const resultTtlMs = validate.optional(o.resultTtlMs, base.resultTtlMs, (v) =>
    validate.durationMs(`${argument}.resultTtlMs`, v),
  );
  return { id, delayMs, priority, attempts, backoffType, backoffDelayMs, backoffMaxMs, jitter, group, resultTtlMs };
}

/** Job options with every default filled in. */
export const BASE_JOB: ParsedJob = Object.freeze({
  id: undefined,
  delayMs: 0,
  priority: 0,
  attempts: DEFAULT_ATTEMPTS,
  backoffType: 2,
  backoffDelayMs: DEFAULT_BACKOFF.delayMs,
  backoffMaxMs: DEFAULT_BACKOFF.maxDelayMs,
  jitter: 0,
  group: "",
  resultTtlMs: DEFAULT_RESULT_TTL_MS,
});

/** The 10 script arguments of a job after its id, as stored with a schedule: data, then {@link jobFields}. */
export function jobArgs(job: ParsedJob, data: string): (string | number)[] {
  return [data, ...jobFields(job)];
}

/** The 9 option fields of a job, in the order of lua/_lib/queue-add.lua's qa_options (the group last). */
function jobFields(job: ParsedJob): (string | number)[] {
  return [
    job.delayMs,
    job.priority,
    job.attempts,
    job.backoffType,
    job.backoffDelayMs,
    job.backoffMaxMs,
    job.jitter,
    job.resultTtlMs,
    job.group,
  ];
}
