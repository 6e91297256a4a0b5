import { type Cluster, Redis } from "ioredis";
import type { RedisClient } from "./client.js";
import { RedisUnavailableError, toCoordisError } from "./errors.js";
import type { ScriptDef, ScriptSender } from "./scripts.js";
import { runScriptInOrder } from "./scripts.js";

/** Most times a durable script call on a Cluster is sent again after MOVED / ASK before it fails as unavailable. */
const MAX_DURABLE_REDIRECTIONS = 5;
/** Pause before the n-th redirected send beyond the first, ms (n × this). */
const REDIRECTION_PAUSE_MS = 50;

/** Set when the caller's deadline passed: a durable call on a Cluster must not be sent again after that. */
export class Expiry {
  #expired = false;
  #reached: Promise<void> | undefined;
  #resolve: (() => void) | undefined;

  get expired(): boolean {
    return this.#expired;
  }

  /** Marks the deadline as passed. */
  expire(): void {
    this.#expired = true;
    this.#resolve?.();
  }

  /** Resolves once {@link expire} was called. */
  get reached(): Promise<void> {
    if (this.#reached === undefined) {
      this.#reached = this.#expired ? Promise.resolve() : new Promise<void>((resolve) => (this.#resolve = resolve));
    }
    return this.#reached;
  }
}

/** Per Cluster client: resolves when it is ready (has a slot map again) or ended; one listener pair per client. */
const readyWaits = new WeakMap<Cluster, Promise<void>>();

function readyOrEnded(cluster: Cluster): Promise<void> {
  let waiting = readyWaits.get(cluster);
  if (waiting === undefined) {
    waiting = new Promise<void>((resolve) => {
      const done = () => {
        cluster.off("ready", done);
        cluster.off("end", done);
        readyWaits.delete(cluster);
        resolve();
      };
      cluster.on("ready", done);
      cluster.on("end", done);
    });
    readyWaits.set(cluster, waiting);
  }
  return waiting;
}

/**
 * Waits, while `cluster` has no slot map (connecting, or reconnecting after losing every node), until it has one or
 * `expiry` is reached. ioredis keeps a pipeline exec'd meanwhile out of every queue (no command, no timer) and sends it
 * once it has a slot map, however late: after the caller's deadline told it the call had failed.
 */
async function slotMapWithin(cluster: Cluster, expiry: Expiry): Promise<void> {
  // A lazyConnect client not connected yet: the pipeline's exec would have opened it.
  if (cluster.status === "wait") cluster.connect().catch(() => {});
  while (cluster.slots.length === 0 && !expiry.expired && cluster.status !== "end") {
    await Promise.race([readyOrEnded(cluster), expiry.reached]);
  }
}

/** A MOVED or ASK reply: the slot is served elsewhere, and the command did not run. */
function isRedirection(err: unknown): boolean {
  return err instanceof Error && /^(MOVED|ASK) \d+ /.test(err.message);
}

/** The node an ASK reply names: one of the Cluster client's connections, or a short-lived one of its own. */
interface AskTarget {
  readonly node: Redis;
  /** Opened for this send (a node the client does not know: it serves no slot yet), closed after it. */
  readonly temporary: boolean;
}

/**
 * The node an ASK reply sends the command to (`ASK <slot> <host>:<port>`, mapped through the client's `natMap` when
 * it has one); undefined for a MOVED reply. A node the Cluster client does not know (one that serves no slot yet:
 * the first slot moving to a node just added) gets a connection of its own, with the client's `redisOptions`.
 */
function askTarget(cluster: Cluster, err: unknown): AskTarget | undefined {
  const m = err instanceof Error ? /^ASK \d+ (.+):(\d+)$/.exec(err.message) : null;
  if (m === null) return undefined;
  let host = m[1] as string;
  let port = Number(m[2]);
  const natMap = cluster.options.natMap;
  const mapped = typeof natMap === "function" ? natMap(`${host}:${port}`) : natMap?.[`${host}:${port}`];
  if (mapped) ({ host, port } = mapped);
  const known = cluster.nodes("all").find((node) => node.options.host === host && node.options.port === port);
  if (known !== undefined) return { node: known, temporary: false };
  const node = new Redis({
    ...cluster.options.redisOptions,
    host,
    port,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  node.on("error", () => {});
  return { node, temporary: true };
}

/** Reloads the Cluster client's slot map (after `pauseMs`); a failed reload is left to the next send. */
async function refreshSlots(cluster: Cluster, pauseMs: number): Promise<void> {
  if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
}

/**
 * A durable script call on a Cluster: the script and `wait` (WAIT / WAITAOF) as a two-command pipeline, which ioredis
 * sends to the node owning the keys' slot in one write, in the client's issue order (with its NOSCRIPT fallback).
 * MOVED reloads the slot map and sends again; ASK sends to the node it names, after ASKING. Nothing is sent once
 * `expiry` is set (the caller's deadline passed).
 *
 * @returns the script's reply and the wait's `[error, reply]`
 * @throws ScriptError / RedisUnavailableError when the script itself failed, or kept being redirected
 */
export async function sendToCluster(
  redis: RedisClient,
  script: ScriptDef<never, never, unknown>,
  keys: readonly string[],
  argv: (string | number | Buffer)[],
  wait: [string, ...number[]],
  extraMs: number,
  expiry: Expiry,
): Promise<{ reply: unknown; waited: [Error | null, unknown] }> {
  const notSent = () => new RedisUnavailableError(`script "${script.name}" passed its deadline; not sent again`);
  /** The pipeline, to the keys' node, or to the node an ASK named with ASKING first (its replies without ASKING's). */
  const pipeline = async (useSource: boolean, asked?: AskTarget) => {
    const { node, temporary } = asked ?? { node: undefined, temporary: false };
    try {
      if (temporary) {
        await node?.connect();
        // Connecting took a while: past the caller's deadline it must not be sent any more (see sendOnce).
        if (expiry.expired) throw notSent();
      }
      if (node === undefined) {
        await slotMapWithin(redis as Cluster, expiry);
        if (expiry.expired) throw notSent();
      }
      const p = (node ?? redis).pipeline();
      if (node !== undefined) p.call("ASKING");
      if (useSource) p.eval(script.source, script.numberOfKeys, ...argv);
      else p.evalsha(script.sha1, script.numberOfKeys, ...argv);
      p.call(...wait);
      const results = await p.exec();
      return node === undefined ? results : (results?.slice(1) ?? null);
    } finally {
      if (temporary) node?.disconnect();
    }
  };
  const sendOnce = async (useSource: boolean, asked?: AskTarget) => {
    // The caller was told the outcome is unknown and may have undone the call (a lock's release of a grant it may
    // have got): sending it again now could take effect after that undo.
    if (expiry.expired) throw notSent();
    return pipeline(useSource, asked).catch((err: unknown) => {
      throw toCoordisError(err, script.name);
    });
  };
  let waited: [Error | null, unknown] | undefined;
  // One call of the issue-order runner (see runScript): it retries with the source after a NOSCRIPT.
  const send: ScriptSender = async (useSource) => {
    let results = await sendOnce(useSource);
    // ioredis follows a MOVED or an ASK inside a pipeline only when every reply is that same error, which WAIT's
    // never is: after a failover or a slot move the script comes back MOVED (it did not run) and the client's slot
    // map stays stale, so every later durable call would fail too. Refresh the map and send again (the node that
    // answered MOVED ran nothing). During a slot's migration, ASK names the node that holds the keys already moved:
    // the pipeline goes there once, with ASKING before the script (the slot map is unchanged, so no refresh).
    for (let redirections = 0; isRedirection(results?.[0]?.[0]); redirections++) {
      if (redirections === MAX_DURABLE_REDIRECTIONS) {
        throw new RedisUnavailableError(
          `script "${script.name}" was redirected ${redirections} times (${String(results?.[0]?.[0])}); the cluster's slots are moving, try again`,
          { cause: results?.[0]?.[0] },
        );
      }
      const asked = askTarget(redis as Cluster, results?.[0]?.[0]);
      if (asked === undefined) await refreshSlots(redis as Cluster, REDIRECTION_PAUSE_MS * redirections);
      results = await sendOnce(useSource, asked);
    }
    const [scriptResult, wait] = results ?? [];
    if (scriptResult === undefined) throw toCoordisError(new Error("empty pipeline reply"), script.name);
    if (scriptResult[0] != null) throw scriptResult[0];
    waited = wait ?? [new Error("no reply to the wait"), undefined];
    return scriptResult[1];
  };
  try {
    const reply = await runScriptInOrder(redis, script, keys, send, extraMs);
    return { reply, waited: waited as [Error | null, unknown] };
  } finally {
    // The caller has its answer (or was told the outcome is unknown): a redirected send still under way stops here.
    expiry.expire();
  }
}
