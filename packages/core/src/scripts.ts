import type { RedisClient } from "./client.js";
import { commandTimeoutOf, isCluster } from "./client.js";
import { corkUntilTickEnd } from "./cork.js";
import { RedisUnavailableError, toCoordisError } from "./errors.js";

/**
 * A Lua script generated from `lua/<primitive>/<operation>.lua` by `scripts/gen-lua.ts`. `K` and `A` are the
 * names of its KEYS and ARGV (from the file's header) and `R` its reply type, so calls are typed per script.
 */
export interface ScriptDef<K extends readonly string[], A extends readonly string[], R> {
  /** `"<primitive>/<operation>"`, e.g. `"lock/acquire"`. */
  readonly name: string;
  /** Names of KEYS[1..n], in order. */
  readonly keys: K;
  /** Names of ARGV[1..n], in order. */
  readonly args: A;
  /** `keys.length`, the `numkeys` argument of EVALSHA. */
  readonly numberOfKeys: number;
  /** The full Lua source after includes were expanded. */
  readonly source: string;
  /** SHA1 of `source`, as `SCRIPT LOAD` would return it. */
  readonly sha1: string;
  /** Phantom field carrying the reply type; always `undefined` at run time. */
  readonly reply?: R;
}

/** Declares a script. Used by the generated `scripts.generated.ts` modules; rarely needed by hand. */
export function defineScript<const K extends readonly string[], const A extends readonly string[], R = unknown>(def: {
  name: string;
  keys: K;
  args: A;
  source: string;
  sha1: string;
}): ScriptDef<K, A, R> {
  return Object.freeze({ ...def, numberOfKeys: def.keys.length });
}

/** One string per KEYS name of a script, in header order. */
export type ScriptKeys<K extends readonly string[]> = { readonly [I in keyof K]: string };
/** One value per ARGV name of a script, in header order. Numbers are sent in decimal. */
export type ScriptArgs<A extends readonly string[]> = { readonly [I in keyof A]: string | number };

/**
 * Extra time Coordis allows on top of the client's `commandTimeout` before it gives up on a script call itself.
 * It only matters where ioredis' own timeout does not apply (a cluster client still discovering its slots).
 */
export const DEADLINE_MARGIN_MS = 250;
/** Deadline used when a client has no `commandTimeout` at all (a client Coordis did not create). */
export const FALLBACK_DEADLINE_MS = 10_000;

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("NOSCRIPT");
}

/** ioredis' node-style callback, its last argument to any command: called once the command's reply is in. */
type ReplyCallback = (err: Error | null, reply?: unknown) => void;

type EvalClient = {
  evalsha(sha: string, numKeys: number, argv: (string | number)[], callback: ReplyCallback): Promise<unknown>;
  eval(source: string, numKeys: number, argv: (string | number)[], callback: ReplyCallback): Promise<unknown>;
};
/** The same commands without a callback: ioredis' promise settles the caller. */
type PlainEvalClient = {
  evalsha(sha: string, numKeys: number, argv: (string | number)[]): Promise<unknown>;
  eval(source: string, numKeys: number, argv: (string | number)[]): Promise<unknown>;
};

/** How a script call reaches Redis: straight through the client, or through its {@link WriteCoalescer}. */
interface ScriptSender {
  evalsha(sha1: string, numKeys: number, argv: (string | number)[]): Promise<unknown>;
  eval(source: string, numKeys: number, argv: (string | number)[]): Promise<unknown>;
}

/**
 * Sends one command on `client` and settles through ioredis' per-command callback, as the coalescer settles its
 * callers. On a client that coalesces, direct calls settle this way too, so every caller learns its reply in reply
 * order: when the replies of a pipeline and of direct commands arrive together, their NOSCRIPT fallbacks are sent in
 * the order the calls were made. (Awaiting ioredis' own promise instead wakes a direct caller one microtask ahead
 * of coalesced callers answered before it, and its fallback EVAL would overtake theirs.)
 */
function send(
  client: EvalClient,
  command: "evalsha" | "eval",
  script: string,
  numKeys: number,
  argv: (string | number)[],
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    client[command](script, numKeys, argv, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

/**
 * The direct sender of one client. On a client that has a coalescer, whatever is queued there was called earlier,
 * so it is written first — at the moment a direct command is written, not when its call was made (a call that
 * waited for a NOSCRIPT recovery, or a fallback EVAL, is written later than its call) — and the reply settles
 * through {@link send}. A client that never coalesced keeps ioredis' own promise (no extra allocation): every call
 * it sent before its coalescer existed is answered before any coalesced one, so the order argument still holds.
 */
function directSender(redis: RedisClient, coalescer: () => WriteCoalescer | undefined): ScriptSender {
  const client = redis as unknown as EvalClient & PlainEvalClient;
  const direct =
    (command: "evalsha" | "eval") =>
    (script: string, numKeys: number, argv: (string | number)[]): Promise<unknown> => {
      // Every command written in this tick leaves in one writev (see corkUntilTickEnd).
      corkUntilTickEnd(redis);
      const queue = coalescer();
      if (queue === undefined) return client[command](script, numKeys, argv);
      queue.flush();
      return send(client, command, script, numKeys, argv);
    };
  return { evalsha: direct("evalsha"), eval: direct("eval") };
}

/** One script command waiting in a {@link WriteCoalescer} for the end of the event-loop turn. */
interface QueuedCommand {
  readonly command: "evalsha" | "eval";
  /** The SHA1 (EVALSHA) or the source (EVAL). */
  readonly script: string;
  readonly numKeys: number;
  readonly argv: (string | number)[];
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: unknown) => void;
}

/** The ioredis callback that settles a queued caller: straight from the reply, like {@link send}. */
function settleFrom(q: QueuedCommand): ReplyCallback {
  return (err, reply) => (err ? q.reject(err) : q.resolve(reply));
}

type PipelineClient = {
  pipeline(): {
    evalsha(sha: string, numKeys: number, argv: (string | number)[], callback: ReplyCallback): unknown;
    eval(source: string, numKeys: number, argv: (string | number)[], callback: ReplyCallback): unknown;
    exec(): Promise<Array<[Error | null, unknown]> | null>;
  };
};

/**
 * Write coalescing for one standalone (or Sentinel) client: script commands queued during one event-loop turn are
 * written at its end as one ioredis pipeline — one socket write instead of one per command. Each caller is settled
 * from its own command's reply (ioredis' per-command callback), as soon as that reply is in: a slow command later
 * in the pipeline does not hold it back. Commands leave in the order they were queued, and the client's direct
 * sender writes whatever is queued before each command of its own, so Coordis script calls on one client
 * (`runScript`, `runScriptDynamic`, `runScriptCoalesced`) are written in call order. Plain ioredis commands sent on
 * the client meanwhile are not: they are written at once, ahead of what is queued.
 */
class WriteCoalescer implements ScriptSender {
  readonly #redis: RedisClient;
  #queue: QueuedCommand[] = [];
  #scheduled = false;
  readonly #onTurnEnd = () => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(redis: RedisClient) {
    this.#redis = redis;
  }

  evalsha(sha1: string, numKeys: number, argv: (string | number)[]): Promise<unknown> {
    return this.#enqueue("evalsha", sha1, numKeys, argv);
  }

  eval(source: string, numKeys: number, argv: (string | number)[]): Promise<unknown> {
    return this.#enqueue("eval", source, numKeys, argv);
  }

  #enqueue(command: "evalsha" | "eval", script: string, numKeys: number, argv: (string | number)[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ command, script, numKeys, argv, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // setImmediate, not process.nextTick: the check phase comes after every I/O callback of this loop
        // iteration, so replies that arrived together from several masters release their callers' next commands
        // into one write per master.
        setImmediate(this.#onTurnEnd);
      }
    });
  }

  /** Writes every queued command now: as one pipeline, or as a plain command when only one is queued. */
  flush(): void {
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    const client = this.#redis as unknown as EvalClient & PipelineClient;
    corkUntilTickEnd(this.#redis);
    try {
      if (batch.length === 1) {
        const only = batch[0] as QueuedCommand;
        client[only.command](only.script, only.numKeys, only.argv, settleFrom(only));
        return;
      }
      const pipeline = client.pipeline();
      for (const q of batch) {
        // Each caller is settled by its own command (the reply, or the error of that command alone). A pipeline
        // cut off mid-answer settles the commands it answered, and ioredis rejects the others with its AbortError.
        pipeline[q.command](q.script, q.numKeys, q.argv, settleFrom(q));
      }
      // Every command has settled by the time exec() does, so this reaches only callers the pipeline failed before
      // settling their command (settling a caller twice is a no-op).
      pipeline.exec().catch((err: unknown) => {
        for (const q of batch) q.reject(err);
      });
    } catch (err) {
      for (const q of batch) q.reject(err);
    }
  }
}

/**
 * NOSCRIPT recovery state of one script on one client. Commands on one connection execute in the order they were
 * sent, but a call that failed with NOSCRIPT is retried (as EVAL) only when its error comes back — after calls sent
 * later may already have succeeded with EVALSHA on the freshly loaded script. To keep calls in issue order, once a
 * NOSCRIPT is seen every new call of that script waits until all calls in flight at that moment have settled.
 */
interface RecoveryState {
  inflight: number;
  recovering: boolean;
  waiting: Array<() => void>;
}

/**
 * What Coordis keeps per client: its deadline (looked up once), the recovery state of each script, how calls are
 * sent, and the write coalescer once {@link runScriptCoalesced} used it.
 */
interface ClientState {
  /** 0 = ioredis' commandTimeout covers it; otherwise our own deadline in ms. */
  readonly deadlineMs: number;
  readonly scripts: Map<string, RecoveryState>;
  readonly cluster: boolean;
  readonly direct: ScriptSender;
  coalescer: WriteCoalescer | undefined;
}

const clients = new WeakMap<RedisClient, ClientState>();

function clientState(redis: RedisClient): ClientState {
  let state = clients.get(redis);
  if (state === undefined) {
    const timeout = commandTimeoutOf(redis);
    // A standalone client with commandTimeout times out every command itself, even one waiting in the offline
    // queue. A Cluster keeps its own offline queue with no timer, so there we add one.
    const deadlineMs =
      timeout !== undefined && !isCluster(redis) ? 0 : (timeout ?? FALLBACK_DEADLINE_MS) + DEADLINE_MARGIN_MS;
    const created: ClientState = {
      deadlineMs,
      scripts: new Map(),
      cluster: isCluster(redis),
      direct: directSender(redis, () => created.coalescer),
      coalescer: undefined,
    };
    state = created;
    clients.set(redis, state);
  }
  return state;
}

function recoveryState(client: ClientState, sha1: string): RecoveryState {
  let state = client.scripts.get(sha1);
  if (state === undefined) {
    state = { inflight: 0, recovering: false, waiting: [] };
    client.scripts.set(sha1, state);
  }
  return state;
}

/** EVALSHA with the NOSCRIPT fallback, sent through `sender`; rejects with a CoordisError. */
async function evalWithFallback(
  sender: ScriptSender,
  script: ScriptDef<never, never, unknown>,
  state: RecoveryState,
  numKeys: number,
  argv: (string | number)[],
): Promise<unknown> {
  try {
    if (state.recovering) await new Promise<void>((resolve) => state.waiting.push(resolve));
    state.inflight++;
    try {
      return await sender.evalsha(script.sha1, numKeys, argv);
    } catch (err) {
      // The server's script cache is empty after a restart, a failover or SCRIPT FLUSH: send the source once.
      // EVAL also caches it, so the next call is an EVALSHA again.
      if (!isNoScript(err)) throw err;
      state.recovering = true;
      return await sender.eval(script.source, numKeys, argv);
    } finally {
      state.inflight--;
      if (state.recovering && state.inflight === 0) {
        state.recovering = false;
        const waiting = state.waiting;
        state.waiting = [];
        for (const resume of waiting) resume();
      }
    }
  } catch (err) {
    throw toCoordisError(err, script.name);
  }
}

/** Rejects with RedisUnavailableError when `pending` has not settled within `deadlineMs`. */
function withDeadline(pending: Promise<unknown>, deadlineMs: number, scriptName: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new RedisUnavailableError(
            `Redis did not answer script "${scriptName}" within ${deadlineMs} ms (Coordis deadline); ` +
              "it may still run. Check that the server or cluster is reachable.",
          ),
        ),
      deadlineMs,
    );
    pending.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * Runs a generated script: EVALSHA (one round trip), falling back to EVAL once when the server answers NOSCRIPT.
 * On a Cluster ioredis routes it by the first key; every key of one script shares a hash tag, so it never raises
 * CROSSSLOT.
 *
 * @returns the script's reply, typed by its header's `Reply:` line
 * @throws RedisUnavailableError when Redis cannot be reached within the client's command timeout (the script may
 *   or may not have run), ScriptError when Redis or the script rejected the call
 */
export function runScript<K extends readonly string[], A extends readonly string[], R>(
  redis: RedisClient,
  script: ScriptDef<K, A, R>,
  keys: ScriptKeys<K>,
  args: ScriptArgs<A>,
): Promise<R> {
  const def = script as unknown as ScriptDef<never, never, unknown>;
  return run(
    redis,
    def,
    def.numberOfKeys,
    keys as readonly string[],
    args as readonly (string | number)[],
  ) as Promise<R>;
}

/**
 * Runs a generated script with a variable number of keys: `numkeys` is `keys.length` instead of the header's key
 * count. For scripts whose KEYS are a repeated group (a micro-batch script's header describes the keys of one call,
 * repeated once per call; the leaderboard's boards come as key pairs) or a fixed part plus such groups, as the
 * script's header says. Same round trip, NOSCRIPT fallback, deadline and error mapping as {@link runScript}. On a
 * Cluster every key must hash to one slot (ioredis routes by the first key; Redis raises CROSSSLOT otherwise); on a
 * standalone server keys of different hash tags may share one call.
 *
 * @param keys the KEYS, in the order the script's header documents
 * @param args the ARGV (numbers are sent in decimal)
 * @returns the script's reply, typed by its header's `Reply:` line
 * @throws RedisUnavailableError, ScriptError like {@link runScript}
 */
export function runScriptDynamic<K extends readonly string[], A extends readonly string[], R>(
  redis: RedisClient,
  script: ScriptDef<K, A, R>,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<R> {
  return run(redis, script as unknown as ScriptDef<never, never, unknown>, keys.length, keys, args) as Promise<R>;
}

/**
 * Like {@link runScript}, with write coalescing: calls made on the same standalone or Sentinel client during one
 * event-loop turn are written at the end of that turn (`setImmediate`) as one ioredis pipeline — one socket write
 * instead of one per call — which saves client CPU when many calls are in flight (Redlock sends every operation to
 * each of its masters). Each caller still gets its own reply or error, with the same NOSCRIPT fallback, deadline
 * and error mapping as {@link runScript}, and gets it as soon as its own command is answered (a slow command later
 * in the same pipeline does not delay it). When the connection drops after part of a pipeline was answered, the
 * unanswered callers get RedisUnavailableError: their scripts may have run.
 *
 * Order: Coordis script calls on one client — {@link runScript}, {@link runScriptDynamic} and this — are written in
 * call order (a direct call first writes whatever is queued). A NOSCRIPT recovery keeps the calls of that script in
 * call order, coalesced or not: their fallback EVALs go out in call order, and calls made meanwhile wait for it.
 * Plain ioredis commands sent on the same client are not part of that order: they are written at once, ahead of
 * script calls still queued in the same turn. Costs up to one event-loop turn of latency; a call
 * alone in its turn is written as a plain command. On a Cluster client it is exactly {@link runScript} (no
 * coalescing: a pipeline must stay within one slot's node).
 *
 * Unlike ioredis' `enableAutoPipelining`, it does not coalesce or delay other commands on the client.
 *
 * @returns the script's reply, typed by its header's `Reply:` line
 * @throws RedisUnavailableError, ScriptError like {@link runScript}
 */
export function runScriptCoalesced<K extends readonly string[], A extends readonly string[], R>(
  redis: RedisClient,
  script: ScriptDef<K, A, R>,
  keys: ScriptKeys<K>,
  args: ScriptArgs<A>,
): Promise<R> {
  const def = script as unknown as ScriptDef<never, never, unknown>;
  return run(
    redis,
    def,
    def.numberOfKeys,
    keys as readonly string[],
    args as readonly (string | number)[],
    true,
  ) as Promise<R>;
}

function run(
  redis: RedisClient,
  script: ScriptDef<never, never, unknown>,
  numKeys: number,
  keys: readonly string[],
  args: readonly (string | number)[],
  coalesce = false,
): Promise<unknown> {
  try {
    const client = clientState(redis);
    let sender: ScriptSender;
    if (coalesce && !client.cluster) {
      client.coalescer ??= new WriteCoalescer(redis);
      sender = client.coalescer;
    } else {
      sender = client.direct; // it writes whatever is queued for coalescing first
    }
    const state = recoveryState(client, script.sha1);
    const nk = keys.length;
    const argv: (string | number)[] = new Array(nk + args.length);
    for (let i = 0; i < nk; i++) argv[i] = keys[i] as string;
    for (let i = 0; i < args.length; i++) argv[nk + i] = args[i] as string | number;
    const pending = evalWithFallback(sender, script, state, numKeys, argv);
    return client.deadlineMs === 0 ? pending : withDeadline(pending, client.deadlineMs, script.name);
  } catch (err) {
    return Promise.reject(toCoordisError(err, script.name));
  }
}
