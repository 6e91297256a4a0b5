import { Command } from "ioredis";
import { isClosed, type RedisClient } from "./client.js";
import { corkUntilTickEnd } from "./cork.js";
import { RedisUnavailableError, toCoordisError } from "./errors.js";
import { type ClientState, clientState, markSeen, nodeOf, release, waitTurn } from "./script-order.js";

export { DEADLINE_MARGIN_MS, FALLBACK_DEADLINE_MS } from "./script-order.js";

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

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("NOSCRIPT");
}

/**
 * Error replies a server gives before it looks for the script: BUSY (another script runs past busy-reply-threshold),
 * LOADING, an ACL or Cluster refusal, a write refused up front. The call did not run, and the server may not have its
 * script: it does not count as seen (a later call of it goes out alone again). Any other error reply is the script's
 * own (it ran). Over-matching only costs a probe.
 */
const REFUSED_BEFORE_RUN =
  /^(?:BUSY|LOADING|NOPERM|NOAUTH|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|MOVED|ASK|CROSSSLOT|READONLY|NOREPLICAS|MISCONF|OOM)(?:\s|$)/;

/** Whether `err` is an error reply of the script itself (so the server has the script), see {@link REFUSED_BEFORE_RUN}. */
function ranAndFailed(err: unknown): boolean {
  return err instanceof Error && err.name === "ReplyError" && !REFUSED_BEFORE_RUN.test(err.message);
}

type EvalClient = {
  evalsha(sha: string, numKeys: number, ...rest: (string | number | Buffer)[]): Promise<unknown>;
  eval(source: string, numKeys: number, ...rest: (string | number | Buffer)[]): Promise<unknown>;
};

/**
 * Sends EVALSHA (`head` the sha1) or EVAL (`head` the source) as a command of its own. A client with
 * `enableAutoPipelining` would send it inside a pipeline instead, out of reach of the guard that takes a call that
 * failed while the client was offline out of its queue: a Cluster client without a slot map yet keeps such a pipeline
 * (no command created, no timer) until it has one and then sends it, after the call's caller was told it had failed.
 * A command of its own goes through the connection's queue as without autopipelining (see offline-queue.ts).
 */
export function sendEval(
  redis: RedisClient,
  name: "evalsha" | "eval",
  head: string,
  numKeys: number,
  argv: readonly (string | number | Buffer)[],
): Promise<unknown> {
  if (!autoPipelined(redis)) return (redis as unknown as EvalClient)[name](head, numKeys, ...argv);
  return sendOwn(redis, name, [head, numKeys, ...argv]);
}

/**
 * Sends a plain command (`WAIT`, `WAITAOF` after a durable call's script) as a command of its own, as
 * {@link sendEval} does: with `enableAutoPipelining` ioredis would write it a turn of the event loop later, inside a
 * pipeline, after the commands sent directly meanwhile.
 */
export function sendCall(redis: RedisClient, name: string, args: readonly (string | number)[]): Promise<unknown> {
  if (!autoPipelined(redis)) return (redis as unknown as CallClient).call(name, ...args);
  return sendOwn(redis, name.toLowerCase(), args);
}

function autoPipelined(redis: RedisClient): boolean {
  return (redis.options as { enableAutoPipelining?: boolean }).enableAutoPipelining === true;
}

function sendOwn(redis: RedisClient, name: string, args: readonly (string | number | Buffer)[]): Promise<unknown> {
  const command = new Command(name, [...args], { replyEncoding: "utf8" });
  redis.sendCommand(command);
  return command.promise;
}

type CallClient = { call(command: string, ...args: (string | number)[]): Promise<unknown> };

/**
 * Rejects with RedisUnavailableError when `pending` (`what`: what was sent) has not settled within `ms`. The timer is
 * unref'd: while the call can still be answered its connection keeps the process alive, and a call its client will
 * never settle (ioredis keeps a command queued while reconnecting even after `disconnect()`) must not hold an exiting
 * process for the rest of its deadline.
 */
function withDeadline<T>(pending: Promise<T>, ms: number, what: string, shownMs = ms): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(deadlineError(what, shownMs)), Math.max(1, ms));
    timer.unref();
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
 * Throws when the application closed `redis` (see {@link isClosed}): a call made on it would wait in ioredis' offline
 * queue for its whole deadline (a client disconnected while it reconnected, a Cluster that had lost every node), never
 * to be answered.
 */
function assertOpen(redis: RedisClient, script: ScriptDef<never, never, unknown>): void {
  if (!isClosed(redis)) return;
  throw new RedisUnavailableError(
    `Redis is unavailable while running script "${script.name}": Connection is closed (the application closed the ` +
      "client with disconnect() or quit(): it never answers again; nothing was sent). Give the primitive an open client.",
    { cause: new Error("Connection is closed.") },
  );
}

function deadlineError(what: string, ms: number): RedisUnavailableError {
  return new RedisUnavailableError(
    `Redis did not answer ${what} within ${ms} ms (Coordis deadline); ` +
      "it may still run. Check that the server or cluster is reachable.",
  );
}

/** `pending` bounded by the call's deadline (the client's deadline counted from when the call was made). */
function scriptDeadline<T>(
  pending: Promise<T>,
  deadlineAt: number,
  client: ClientState,
  script: ScriptDef<never, never, unknown>,
): Promise<T> {
  return withDeadline(pending, deadlineAt - performance.now(), `script "${script.name}"`, client.waitDeadlineMs);
}

/**
 * Sends one script call its own way (a durable call: the script and its WAIT): EVALSHA when `useSource` is false, EVAL
 * with the source when true (after a NOSCRIPT). Resolves with the script's reply; rejects with the script's error
 * (a NOSCRIPT included, which is then retried with the source).
 */
export type ScriptSender = (useSource: boolean) => Promise<unknown>;

/**
 * EVALSHA with the NOSCRIPT fallback, in issue order (see {@link ClientState}); rejects with a CoordisError. `send`
 * replaces the plain EVALSHA / EVAL (a durable call sends its WAIT with it), `extraMs` lengthens the deadline by what
 * `send` waits for beyond the script (the WAIT's timeout).
 */
async function evalInOrder(
  redis: RedisClient,
  client: ClientState,
  script: ScriptDef<never, never, unknown>,
  numKeys: number,
  argv: (string | number | Buffer)[],
  send?: ScriptSender,
  extraMs = 0,
): Promise<unknown> {
  // Our own deadline (a Cluster, or a client without commandTimeout) counts from the call, waiting included. A call
  // that has to wait gets one on every client (ioredis' commandTimeout would only count from when it is sent).
  let deadlineAt = client.deadlineMs === 0 ? 0 : performance.now() + client.deadlineMs + extraMs;
  try {
    assertOpen(redis, script);
    if (client.handoff || client.recovering || client.probing > 0 || client.waiting.length > 0) {
      if (deadlineAt === 0) deadlineAt = performance.now() + client.waitDeadlineMs + extraMs;
      const turn = await waitTurn(client, deadlineAt);
      if (!turn) throw deadlineError(`script "${script.name}"`, client.waitDeadlineMs);
      client.handoff = false;
      if (performance.now() >= deadlineAt) {
        release(client);
        throw deadlineError(`script "${script.name}"`, client.waitDeadlineMs);
      }
    }
    const node = nodeOf(client, numKeys, argv[0]);
    const seen = node === undefined ? undefined : client.seen.get(node);
    const probe = seen === undefined || !seen.has(script.sha1);
    // The script is recorded as there once it has run: after a probe, or after a retry that followed a NOSCRIPT.
    let fresh = probe;
    client.inflight++;
    if (probe) client.probing++;
    // Calls let go behind this one follow it now, unless it is a probe.
    if (client.waiting.length > 0) release(client);
    try {
      let reply: unknown;
      try {
        // Every command written in this tick leaves in one writev (see corkUntilTickEnd).
        if (send === undefined) corkUntilTickEnd(redis);
        const sent = send === undefined ? sendEval(redis, "evalsha", script.sha1, numKeys, argv) : send(false);
        reply = await (deadlineAt === 0 ? sent : scriptDeadline(sent, deadlineAt, client, script));
      } catch (err) {
        // The server's script cache is empty after a restart, a failover or SCRIPT FLUSH: send the source once.
        // EVAL also caches it, so the next call is an EVALSHA again.
        if (!isNoScript(err)) throw err;
        // A script seen on this server is gone: so may every other be (a restart, a failover, SCRIPT FLUSH), and
        // calls sent after this one may meet NOSCRIPT too. A probe's NOSCRIPT needs no such wait (the calls after it
        // wait anyway), but it may just as well be the first sign that the cache is gone, and its EVAL is about to
        // load its script again: every script counts as unseen, or a call of a lost script sent together with a
        // call of this one would run after it.
        if (!probe) client.recovering = true;
        client.seen.clear();
        fresh = true;
        if (send === undefined) corkUntilTickEnd(redis);
        const sent = send === undefined ? sendEval(redis, "eval", script.source, numKeys, argv) : send(true);
        reply = await (deadlineAt === 0 ? sent : scriptDeadline(sent, deadlineAt, client, script));
      }
      if (fresh) markSeen(client, node, script.sha1);
      return reply;
    } catch (err) {
      // An error reply of the script itself (it ran): the script is there all the same. Not a refusal before it ran
      // (BUSY, LOADING...): the server may not have it, and counting it as seen would let a later call of it go out
      // with others, meet NOSCRIPT and run after calls made after it.
      if (fresh && ranAndFailed(err)) markSeen(client, node, script.sha1);
      throw err;
    } finally {
      client.inflight--;
      if (probe) client.probing--;
      if (client.recovering && client.inflight === 0) client.recovering = false;
      release(client);
    }
  } catch (err) {
    throw toCoordisError(err, script.name);
  }
}

/**
 * Runs one script call that {@link ScriptSender} `send` writes (a durable call: the script and its WAIT), in issue
 * order with every other script call of the client and with the same NOSCRIPT fallback as {@link runScript}. `keys`
 * are the call's KEYS (the first names the node on a Cluster); `extraMs` lengthens the call's deadline by what `send`
 * waits for beyond the script. Rejects with a CoordisError.
 */
export function runScriptInOrder(
  redis: RedisClient,
  script: ScriptDef<never, never, unknown>,
  keys: readonly string[],
  send: ScriptSender,
  extraMs: number,
): Promise<unknown> {
  try {
    return evalInOrder(redis, clientState(redis), script, keys.length, [...keys], send, extraMs);
  } catch (err) {
    return Promise.reject(toCoordisError(err, script.name));
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

/**
 * Runs a generated script: EVALSHA (one round trip), falling back to EVAL once when the server answers NOSCRIPT.
 * Calls on one client run in the order they were made, across scripts (see {@link ClientState}). On a Cluster
 * ioredis routes it by the first key; every key of one script shares a hash tag, so it never raises CROSSSLOT.
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

/**
 * Sends a generated script as EVAL with its source, at once: for an undo queued behind a call whose answer never
 * came (a lock acquire or a claim that timed out and may still run). An EVALSHA would run only if the server has the
 * script cached, and otherwise needs its NOSCRIPT answer back, within the deadline, to retry as EVAL: an undo sent
 * while the server is stalled or unreachable may time out first, and then never run. EVAL runs whatever the cache
 * holds. It skips the issue-order queue of {@link runScript} (it needs no NOSCRIPT retry, so it cannot be overtaken),
 * so it leaves right behind what was already sent on the connection: use it only for a call that commutes with the
 * calls still waiting to be sent (an undo of a token only the unanswered call used). Costs the server a hash of the
 * source; not for hot paths.
 *
 * @throws RedisUnavailableError, ScriptError like {@link runScript}
 */
export function runScriptSource<K extends readonly string[], A extends readonly string[], R>(
  redis: RedisClient,
  script: ScriptDef<K, A, R>,
  keys: ScriptKeys<K>,
  args: ScriptArgs<A>,
): Promise<R> {
  const def = script as unknown as ScriptDef<never, never, unknown>;
  try {
    assertOpen(redis, def);
    const client = clientState(redis);
    const pending = sendEval(redis, "eval", def.source, def.numberOfKeys, [
      ...(keys as readonly string[]),
      ...(args as readonly (string | number)[]),
    ]);
    const bounded =
      client.deadlineMs === 0 ? pending : withDeadline(pending, client.deadlineMs, `script "${def.name}"`);
    return bounded.catch((err: unknown) => {
      throw toCoordisError(err, def.name);
    }) as Promise<R>;
  } catch (err) {
    return Promise.reject(toCoordisError(err, def.name));
  }
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
    const nk = keys.length;
    const argv: (string | number | Buffer)[] = new Array(nk + args.length);
    for (let i = 0; i < nk; i++) argv[i] = keys[i] as string;
    for (let i = 0; i < args.length; i++) argv[nk + i] = args[i] as string | number | Buffer;
    return evalInOrder(redis, client, script, numKeys, argv);
  } catch (err) {
    return Promise.reject(toCoordisError(err, script.name));
  }
}
