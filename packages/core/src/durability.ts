import type { Redis } from "ioredis";
import { commandTimeoutOf, isCluster, type RedisClient } from "./client.js";
import { corkUntilTickEnd } from "./cork.js";
import { Expiry, sendToCluster } from "./durability-cluster.js";
import { CoordisError, InvalidArgumentError, RedisUnavailableError, toCoordisError } from "./errors.js";
import type { ScriptArgs, ScriptDef, ScriptKeys, ScriptSender } from "./scripts.js";
import {
  DEADLINE_MARGIN_MS,
  FALLBACK_DEADLINE_MS,
  runScript,
  runScriptInOrder,
  sendCall,
  sendEval,
} from "./scripts.js";
import { forgetServerInfo, knownServerInfo, serverAtLeast, versionAtLeast } from "./server-info.js";
import * as validate from "./validate.js";

/** Most replicas a durability setting may ask for. */
export const MAX_DURABILITY_REPLICAS = 64;
/** Longest durability deadline, ms. */
export const MAX_DURABILITY_TIMEOUT_MS = 60_000;
/** First Redis version with `WAITAOF`. */
export const WAITAOF_MIN_VERSION = "7.2.0";

/**
 * Opt-in durability of a write: after the script, wait until `replicas` replicas acknowledged it (`WAIT`) and, with
 * `aof`, until it was fsynced to the append-only file of the primary and of `replicas` replicas (`WAITAOF`, Redis ≥
 * 7.2), within `timeoutMs`.
 */
export interface DurabilityOptions {
  /** Replicas that must acknowledge the write (0–64). 0 only makes sense with `aof` (the primary's own fsync). */
  replicas: number;
  /**
   * Also wait for the AOF fsync (`WAITAOF 1 <replicas> <timeoutMs>`: the primary and `replicas` replicas), which
   * needs Redis ≥ 7.2 and `appendonly yes` on them. `true`: required — on an older server every durable operation
   * rejects with a {@link DurabilityError} (`reason: "unsupported"`) before anything is sent. `"if-supported"`:
   * `WAITAOF` where the server has it, `WAIT` alone elsewhere. Default false.
   */
  aof?: boolean | "if-supported";
  /** How long Redis may wait for the acknowledgements, ms (1–60 000). Must be below the client's command timeout. */
  timeoutMs: number;
}

/** A validated {@link DurabilityOptions}. */
export interface Durability {
  readonly replicas: number;
  readonly aof: boolean | "if-supported";
  readonly timeoutMs: number;
}

/** Why a durability guarantee was not reached. */
export type DurabilityFailure = "timeout" | "unsupported" | "failed";

/**
 * A write was not acknowledged as durable as asked within the deadline (`reason: "timeout"`, with the counts Redis
 * reported), the server cannot check it (`"unsupported"`: `aof: true` on Redis < 7.2; nothing was sent), or the
 * wait itself failed (`"failed"`: e.g. no answer, `WAITAOF` on a primary without `appendonly`; the cause is kept).
 * The write itself may have been applied on the primary: the operation says what it did about it (a lock acquire
 * releases what it won). Code `ERR_DURABILITY`.
 */
export class DurabilityError extends CoordisError {
  /** The script whose write was not confirmed, e.g. `"lock/acquire"`. */
  readonly operation: string;
  readonly reason: DurabilityFailure;
  /** Replicas asked for. */
  readonly replicasRequired: number;
  /** Replicas that acknowledged (for `WAITAOF`: that fsynced); undefined when unknown. */
  readonly replicasAcknowledged: number | undefined;
  /** With `WAITAOF`: whether the primary fsynced the write; undefined when `WAITAOF` was not used or is unknown. */
  readonly localFsynced: boolean | undefined;
  /** The deadline, ms. */
  readonly timeoutMs: number;

  constructor(
    init: {
      operation: string;
      reason: DurabilityFailure;
      replicasRequired: number;
      replicasAcknowledged?: number | undefined;
      localFsynced?: boolean | undefined;
      timeoutMs: number;
    },
    options?: { cause?: unknown },
  ) {
    const what =
      init.reason === "unsupported"
        ? `the server has no WAITAOF (needs Redis >= ${WAITAOF_MIN_VERSION}); durability.aof: true cannot be honoured`
        : init.reason === "failed"
          ? `waiting for ${init.replicasRequired} replica(s) failed: ${errorMessage(options?.cause)}`
          : `${init.replicasAcknowledged ?? "?"} of ${init.replicasRequired} replica(s) acknowledged` +
            (init.localFsynced === false ? ", the primary did not fsync" : "") +
            ` within ${init.timeoutMs} ms`;
    super("ERR_DURABILITY", `Durability not reached for "${init.operation}": ${what}`, options);
    this.operation = init.operation;
    this.reason = init.reason;
    this.replicasRequired = init.replicasRequired;
    this.replicasAcknowledged = init.replicasAcknowledged;
    this.localFsynced = init.localFsynced;
    this.timeoutMs = init.timeoutMs;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const DURABILITY_KEYS = new Set(["replicas", "aof", "timeoutMs"]);

/**
 * Validates a `durability` option (undefined → undefined). Unknown keys are rejected. With `clients`, the deadline
 * must be below each client's command timeout (ioredis would otherwise time the wait out first).
 * @throws InvalidArgumentError naming `argument` or one of its keys
 */
export function parseDurability(
  argument: string,
  raw: unknown,
  clients: readonly RedisClient[] = [],
): Durability | undefined {
  if (raw === undefined) return undefined;
  const o = validate.options<DurabilityOptions>(argument, raw);
  for (const key of Object.keys(o)) {
    if (!DURABILITY_KEYS.has(key)) {
      throw new InvalidArgumentError(`${argument}.${key}`, "unknown option (expected replicas, aof, timeoutMs)");
    }
  }
  if (o.replicas === undefined) throw new InvalidArgumentError(`${argument}.replicas`, "is required");
  if (o.timeoutMs === undefined) throw new InvalidArgumentError(`${argument}.timeoutMs`, "is required");
  const replicas = validate.integer(`${argument}.replicas`, o.replicas, { min: 0, max: MAX_DURABILITY_REPLICAS });
  const timeoutMs = validate.durationMs(`${argument}.timeoutMs`, o.timeoutMs, {
    min: 1,
    max: MAX_DURABILITY_TIMEOUT_MS,
  });
  let aof: boolean | "if-supported" = false;
  if (o.aof !== undefined) {
    if (o.aof !== "if-supported" && typeof o.aof !== "boolean") {
      throw new InvalidArgumentError(`${argument}.aof`, `expected true, false or "if-supported"`);
    }
    aof = o.aof;
  }
  if (replicas === 0 && aof === false) {
    throw new InvalidArgumentError(`${argument}.replicas`, "0 replicas without aof asks for nothing; use 1 or more");
  }
  for (const client of clients) {
    const commandTimeout = commandTimeoutOf(client);
    if (commandTimeout !== undefined && timeoutMs >= commandTimeout) {
      throw new InvalidArgumentError(
        `${argument}.timeoutMs`,
        `${timeoutMs} ms is not below the client's commandTimeout (${commandTimeout} ms), which would cut the wait short`,
      );
    }
  }
  return Object.freeze({ replicas, aof, timeoutMs });
}

/** A script's reply and whether its write reached the asked durability (`error` undefined) or not. */
export interface DurableOutcome<R> {
  /** The script's reply (the write happened on the primary, whatever `error` says). */
  readonly reply: R;
  /** Undefined when the guarantee was reached; otherwise why not. */
  readonly error: DurabilityError | undefined;
}

/**
 * Whether `WAITAOF` is used for this client (feature-checked per client: the server version is cached, read again
 * once a minute and after the server refused WAITAOF as unknown, see server-info.ts). Decided
 * at once (no turn of delay, so the call keeps its place in the client's issue order) unless the version is still to
 * be read.
 */
function useWaitAof(redis: RedisClient, d: Durability, operation: string): boolean | Promise<boolean> {
  if (d.aof === false) return false;
  const info = knownServerInfo(redis);
  if (info === undefined) {
    return serverAtLeast(redis, WAITAOF_MIN_VERSION).then((supported) => checkWaitAof(supported, d, operation));
  }
  return checkWaitAof(versionAtLeast(info.versionParts, WAITAOF_MIN_VERSION), d, operation);
}

/** Whether `err` (or one of its causes) is Redis' "unknown command" reply. */
function unknownCommand(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (/unknown command/i.test(e.message)) return true;
  }
  return false;
}

/** `supported`, or the DurabilityError of `aof: true` on a server without WAITAOF. */
function checkWaitAof(supported: boolean, d: Durability, operation: string): boolean {
  if (!supported && d.aof === true) {
    throw new DurabilityError({
      operation,
      reason: "unsupported",
      replicasRequired: d.replicas,
      timeoutMs: d.timeoutMs,
    });
  }
  return supported;
}

/** The wait command's arguments: `WAIT n t` or `WAITAOF 1 n t`. */
function waitCommand(d: Durability, aof: boolean): [string, ...number[]] {
  return aof ? ["WAITAOF", 1, d.replicas, d.timeoutMs] : ["WAIT", d.replicas, d.timeoutMs];
}

/** Turns a WAIT / WAITAOF reply (or its failure) into undefined (reached) or a DurabilityError. */
function judge(
  d: Durability,
  aof: boolean,
  operation: string,
  reply: unknown,
  failure?: unknown,
): DurabilityError | undefined {
  const base = { operation, replicasRequired: d.replicas, timeoutMs: d.timeoutMs };
  if (failure !== undefined)
    return new DurabilityError({ ...base, reason: "failed" }, { cause: toCoordisError(failure) });
  if (aof) {
    const [local, replicas] = (Array.isArray(reply) ? reply : []).map(Number) as [number?, number?];
    if (local !== undefined && local >= 1 && replicas !== undefined && replicas >= d.replicas) return undefined;
    return new DurabilityError({
      ...base,
      reason: "timeout",
      replicasAcknowledged: replicas,
      localFsynced: local === undefined ? undefined : local >= 1,
    });
  }
  const acked = Number(reply);
  if (acked >= d.replicas) return undefined;
  return new DurabilityError({ ...base, reason: "timeout", replicasAcknowledged: acked });
}

/**
 * Standalone / Sentinel: script and wait written back to back on the one connection, in one corked write, in issue
 * order with the client's other script calls (see runScript), with the same NOSCRIPT fallback: after a NOSCRIPT (the
 * WAIT sent with it ran before anything was written) the source goes with a WAIT of its own.
 */
async function runStandalone(
  redis: Redis,
  script: ScriptDef<never, never, unknown>,
  keys: readonly string[],
  argv: (string | number | Buffer)[],
  d: Durability,
  aof: boolean,
): Promise<DurableOutcome<unknown>> {
  const [waitName, ...waitArgs] = waitCommand(d, aof);
  let waitReply: Promise<unknown> | undefined;
  // Commands of their own, written now, also with enableAutoPipelining (see sendEval): in an auto-pipeline they would
  // go out a turn later, after the script calls made after this one.
  const send: ScriptSender = (useSource) => {
    corkUntilTickEnd(redis);
    const scriptReply = useSource
      ? sendEval(redis, "eval", script.source, script.numberOfKeys, argv)
      : sendEval(redis, "evalsha", script.sha1, script.numberOfKeys, argv);
    corkUntilTickEnd(redis);
    const sent = sendCall(redis, waitName, waitArgs);
    sent.catch(() => {});
    waitReply = sent;
    return scriptReply;
  };
  const reply = await runScriptInOrder(redis, script, keys, send, d.timeoutMs);
  const error = await (waitReply as Promise<unknown>).then(
    (w) => judge(d, aof, script.name, w),
    (err: unknown) => judge(d, aof, script.name, undefined, err),
  );
  return { reply, error };
}

/** Cluster: the script and its wait as one pipeline to the keys' node (see durability-cluster.ts), then judged. */
async function runCluster(
  redis: RedisClient,
  script: ScriptDef<never, never, unknown>,
  keys: readonly string[],
  argv: (string | number | Buffer)[],
  d: Durability,
  aof: boolean,
  expiry: Expiry,
): Promise<DurableOutcome<unknown>> {
  const { reply, waited } = await sendToCluster(redis, script, keys, argv, waitCommand(d, aof), d.timeoutMs, expiry);
  const error =
    waited[0] != null ? judge(d, aof, script.name, undefined, waited[0]) : judge(d, aof, script.name, waited[1]);
  return { reply, error };
}

/**
 * Runs a generated script and, when `durability` is given, waits for its write to become durable as asked:
 * `EVALSHA` immediately followed by `WAIT replicas timeoutMs` (or `WAITAOF 1 replicas timeoutMs`) on the same
 * connection, both in one write and one round trip (WAIT cannot run inside a script). On a Cluster the two go as a
 * pipeline to the node that owns the keys. `WAITAOF` is used only with `durability.aof` and only on Redis ≥ 7.2
 * (checked per client, see server-info.ts); `aof: true` on an older server rejects with `DurabilityError` (`"unsupported"`)
 * before anything is sent.
 *
 * Without `durability` it is {@link runScript}'s one EVALSHA and `error` is always undefined.
 *
 * @returns the script's reply and `error`: undefined when the guarantee was reached, a `DurabilityError` otherwise
 *   (the script's write stands on the primary; the caller decides what to undo)
 * @throws ScriptError / RedisUnavailableError when the script itself failed (as runScript); DurabilityError
 *   (`"unsupported"`) as above
 */
export async function runScriptDurable<K extends readonly string[], A extends readonly string[], R>(
  redis: RedisClient,
  script: ScriptDef<K, A, R>,
  keys: ScriptKeys<K>,
  args: ScriptArgs<A>,
  durability: Durability | undefined,
): Promise<DurableOutcome<R>> {
  const def = script as unknown as ScriptDef<never, never, unknown>;
  if (durability === undefined) {
    return { reply: await runScript(redis, script, keys, args), error: undefined };
  }
  // Without a turn of delay when it can (see useWaitAof): the call takes its place in the issue order when it is made.
  const decided = useWaitAof(redis, durability, def.name);
  const aof = typeof decided === "boolean" ? decided : await decided;
  const keyList = keys as readonly string[];
  const argv = [...keyList, ...(args as readonly (string | number | Buffer)[])];
  const expiry = new Expiry();
  const pending = (
    isCluster(redis)
      ? runCluster(redis, def, keyList, argv, durability, aof, expiry)
      : runStandalone(redis as Redis, def, keyList, argv, durability, aof)
  ).then((outcome) => {
    // WAITAOF refused as unknown: the client reaches another server than the one whose version was read (a
    // failover to a replica still on Redis < 7.2 during a rolling upgrade). The version is read again on the next
    // durable call: "if-supported" then uses WAIT, `aof: true` rejects as "unsupported" before sending anything.
    if (aof && outcome.error?.reason === "failed" && unknownCommand(outcome.error.cause)) forgetServerInfo(redis);
    return outcome;
  });
  // A standalone client with commandTimeout times out each command itself; elsewhere (a Cluster, a client without
  // commandTimeout) Coordis adds its own deadline, the wait's timeout included.
  const commandTimeout = commandTimeoutOf(redis);
  if (commandTimeout !== undefined && !isCluster(redis)) return (await pending) as DurableOutcome<R>;
  const deadlineMs = (commandTimeout ?? FALLBACK_DEADLINE_MS) + durability.timeoutMs + DEADLINE_MARGIN_MS;
  let timer: NodeJS.Timeout | undefined;
  try {
    return (await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          expiry.expire();
          reject(
            new RedisUnavailableError(
              `Redis did not answer script "${def.name}" and its durability wait within ${deadlineMs} ms ` +
                "(Coordis deadline); the script may still run.",
            ),
          );
        }, deadlineMs);
        // As every script-call deadline (withDeadline in scripts.ts): a call its client will never settle (ioredis
        // keeps commands queued while reconnecting even after disconnect()) must not hold an exiting process.
        timer.unref();
      }),
    ])) as DurableOutcome<R>;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * {@link runScriptDurable} for callers that only want the reply: rejects with the `DurabilityError` when the
 * guarantee was not reached (the write stands on the primary).
 */
export async function runScriptDurableOrThrow<K extends readonly string[], A extends readonly string[], R>(
  redis: RedisClient,
  script: ScriptDef<K, A, R>,
  keys: ScriptKeys<K>,
  args: ScriptArgs<A>,
  durability: Durability | undefined,
): Promise<R> {
  const { reply, error } = await runScriptDurable(redis, script, keys, args, durability);
  if (error !== undefined) throw error;
  return reply;
}
