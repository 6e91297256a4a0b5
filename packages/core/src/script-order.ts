import type { Cluster, Redis } from "ioredis";
import type { RedisClient } from "./client.js";
import { commandTimeoutOf, isCluster } from "./client.js";
import { failInFlightOnClose } from "./in-flight.js";
import { slotOf } from "./keys.js";
import { guardOfflineQueue } from "./offline-queue.js";

// The per-client state that keeps script calls in issue order (see ClientState), used by scripts.ts.

/**
 * Extra time Coordis allows on top of the client's `commandTimeout` before it gives up on a script call itself.
 * It only matters where ioredis' own timeout does not apply (a cluster client still discovering its slots).
 */
export const DEADLINE_MARGIN_MS = 250;
/** Deadline used when a client has no `commandTimeout` at all (a client Coordis did not create). */
export const FALLBACK_DEADLINE_MS = 10_000;

/**
 * What Coordis keeps per client: its deadline (looked up once) and what keeps script calls in issue order.
 *
 * Commands on one connection execute in the order they were sent, but a call that meets NOSCRIPT is retried (as
 * EVAL) only when its error comes back, after calls sent later may already have run: a later call of the same
 * script once the retry has loaded it, or of another script the server already had. So:
 * - a call of a script not yet seen to run on this client (on a Cluster: on the node serving its slot) is a probe,
 *   and every call issued after it waits until it has settled;
 * - once a NOSCRIPT is seen (a restart, a failover, SCRIPT FLUSH), every script counts as unseen again, and every
 *   new call waits until all calls in flight at that moment have settled;
 * - when a connection closes (the server may come back without its scripts), its scripts count as unseen.
 * Waiting calls are sent in issue order. In the steady state (every script seen) a call is sent at once. A call that
 * waits keeps its deadline, counted from the call: it fails when the deadline passes while it waits, and once sent
 * it gets only what is left of it.
 */
export interface ClientState {
  /** 0 = ioredis' commandTimeout covers it; otherwise our own deadline in ms. */
  readonly deadlineMs: number;
  /** The deadline of a call that has to wait, counted from the call: `deadlineMs`, or else the commandTimeout. */
  readonly waitDeadlineMs: number;
  /** The Cluster client whose slot table names a call's node, or undefined for a standalone or sentinel client. */
  readonly cluster: Cluster | undefined;
  /** The sha1s seen to run since the last NOSCRIPT, per node ("" on a standalone or sentinel client). */
  readonly seen: Map<string, Set<string>>;
  /** Calls sent and not settled (nor past their deadline). */
  inflight: number;
  /** Of those, the probes. */
  probing: number;
  /** A NOSCRIPT was seen and calls sent before it are still in flight. */
  recovering: boolean;
  /** A waiting call was let go and has not been sent yet. */
  handoff: boolean;
  /** Calls waiting to be sent, in issue order. */
  readonly waiting: Array<() => void>;
}

const clients = new WeakMap<RedisClient, ClientState>();

export function clientState(redis: RedisClient): ClientState {
  let state = clients.get(redis);
  if (state === undefined) {
    const timeout = commandTimeoutOf(redis);
    const cluster = isCluster(redis) ? redis : undefined;
    // A standalone client with commandTimeout times out every command itself, even one waiting in the offline
    // queue. A Cluster keeps its own offline queue with no timer, so there we add one.
    const deadlineMs =
      timeout !== undefined && cluster === undefined ? 0 : (timeout ?? FALLBACK_DEADLINE_MS) + DEADLINE_MARGIN_MS;
    // A call that fails while waiting for the connection must not be sent once it is back.
    guardOfflineQueue(redis, deadlineMs);
    // A call in flight when the connection closes fails at once, not at its command timeout.
    failInFlightOnClose(redis);
    state = {
      deadlineMs,
      waitDeadlineMs: deadlineMs === 0 ? (timeout as number) : deadlineMs,
      cluster,
      seen: new Map(),
      inflight: 0,
      probing: 0,
      recovering: false,
      handoff: false,
      waiting: [],
    };
    clients.set(redis, state);
    forgetOnClose(redis, state);
  }
  return state;
}

/**
 * A server that comes back after its connection closed (a restart, a failover) may have lost its scripts: the next
 * calls on that connection are probes again, so none runs ahead of an earlier call that meets NOSCRIPT.
 */
function forgetOnClose(redis: RedisClient, state: ClientState): void {
  const seen = state.seen;
  const cluster = state.cluster;
  if (cluster === undefined) {
    redis.on("close", () => seen.clear());
    return;
  }
  const watch = (node: Redis): void => {
    const key = `${node.options.host}:${node.options.port}`;
    node.on("close", () => seen.delete(key));
  };
  for (const node of cluster.nodes("all")) watch(node);
  cluster.on("+node", watch);
}

/**
 * The node a call on `key` goes to: "" on a standalone client; undefined on a Cluster that has no slot table yet or
 * for a call without keys (ioredis sends it to any node).
 */
export function nodeOf(client: ClientState, numKeys: number, key: unknown): string | undefined {
  if (client.cluster === undefined) return "";
  if (numKeys === 0 || typeof key !== "string") return undefined;
  return client.cluster.slots[slotOf(key)]?.[0];
}

/**
 * Waits until `release` lets this call go (resolves true) or until `deadlineAt` (resolves false, and the call has
 * left the queue).
 */
export function waitTurn(client: ClientState, deadlineAt: number): Promise<boolean> {
  return new Promise((resolve) => {
    const go = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(
      () => {
        const at = client.waiting.indexOf(go);
        if (at === -1) return;
        client.waiting.splice(at, 1);
        resolve(false);
      },
      Math.max(1, deadlineAt - performance.now()),
    );
    // A bound on a call, not work: it never keeps the process alive by itself (see withDeadline).
    timer.unref();
    client.waiting.push(go);
  });
}

/** Records that `sha1` ran on `node` (nothing for an unknown node). */
export function markSeen(client: ClientState, node: string | undefined, sha1: string): void {
  if (node === undefined) return;
  let seen = client.seen.get(node);
  if (seen === undefined) {
    seen = new Set();
    client.seen.set(node, seen);
  }
  seen.add(sha1);
}

/** Lets the first waiting call go when nothing blocks it any more. */
export function release(client: ClientState): void {
  if (client.handoff || client.recovering || client.probing > 0) return;
  const next = client.waiting.shift();
  if (next !== undefined) {
    client.handoff = true;
    next();
  }
}
