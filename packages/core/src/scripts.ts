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

type EvalClient = {
  evalsha(sha: string, numKeys: number, ...rest: (string | number | Buffer)[]): Promise<unknown>;
  eval(source: string, numKeys: number, ...rest: (string | number | Buffer)[]): Promise<unknown>;
};

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

/** What Coordis keeps per client: its deadline (looked up once) and the recovery state of each script. */
interface ClientState {
  /** 0 = ioredis' commandTimeout covers it; otherwise our own deadline in ms. */
  readonly deadlineMs: number;
  readonly scripts: Map<string, RecoveryState>;
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
    state = { deadlineMs, scripts: new Map() };
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

/** EVALSHA with the NOSCRIPT fallback; rejects with a CoordisError. */
async function evalWithFallback(
  redis: RedisClient,
  script: ScriptDef<never, never, unknown>,
  state: RecoveryState,
  numKeys: number,
  argv: (string | number | Buffer)[],
): Promise<unknown> {
  const client = redis as unknown as EvalClient;
  try {
    if (state.recovering) await new Promise<void>((resolve) => state.waiting.push(resolve));
    state.inflight++;
    try {
      // Every command written in this tick leaves in one writev (see corkUntilTickEnd).
      corkUntilTickEnd(redis);
      return await client.evalsha(script.sha1, numKeys, ...argv);
    } catch (err) {
      // The server's script cache is empty after a restart, a failover or SCRIPT FLUSH: send the source once.
      // EVAL also caches it, so the next call is an EVALSHA again.
      if (!isNoScript(err)) throw err;
      state.recovering = true;
      corkUntilTickEnd(redis);
      return await client.eval(script.source, numKeys, ...argv);
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

/**
 * Gives plain commands sent on `redis` (`pending`, described by `what` in the error) the deadline script calls get on
 * that client: none where ioredis' `commandTimeout` covers them, otherwise the client's timeout (or
 * {@link FALLBACK_DEADLINE_MS}) plus {@link DEADLINE_MARGIN_MS}; past it the promise rejects with RedisUnavailableError.
 */
export function withCommandDeadline<T>(redis: RedisClient, pending: Promise<T>, what: string): Promise<T> {
  const deadlineMs = clientState(redis).deadlineMs;
  return deadlineMs === 0 ? pending : (withDeadline(pending, deadlineMs, what) as Promise<T>);
}

/** Rejects with RedisUnavailableError when `pending` (`what`: what was sent) has not settled within `deadlineMs`. */
function withDeadline(pending: Promise<unknown>, deadlineMs: number, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new RedisUnavailableError(
            `Redis did not answer ${what} within ${deadlineMs} ms (Coordis deadline); ` +
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
    args as readonly (string | number | Buffer)[],
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
  args: readonly (string | number | Buffer)[],
): Promise<R> {
  return run(redis, script as unknown as ScriptDef<never, never, unknown>, keys.length, keys, args) as Promise<R>;
}

function run(
  redis: RedisClient,
  script: ScriptDef<never, never, unknown>,
  numKeys: number,
  keys: readonly string[],
  args: readonly (string | number | Buffer)[],
): Promise<unknown> {
  try {
    const client = clientState(redis);
    const state = recoveryState(client, script.sha1);
    const nk = keys.length;
    const argv: (string | number | Buffer)[] = new Array(nk + args.length);
    for (let i = 0; i < nk; i++) argv[i] = keys[i] as string;
    for (let i = 0; i < args.length; i++) argv[nk + i] = args[i] as string | number | Buffer;
    const pending = evalWithFallback(redis, script, state, numKeys, argv);
    return client.deadlineMs === 0 ? pending : withDeadline(pending, client.deadlineMs, `script "${script.name}"`);
  } catch (err) {
    return Promise.reject(toCoordisError(err, script.name));
  }
}
