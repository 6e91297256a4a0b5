import type { EventEmitter } from "node:events";
import { DEFAULT_COMMAND_TIMEOUT_MS } from "./client-safety.js";

/**
 * How long the connection a Sentinel client keeps to each sentinel (to hear of failovers) waits before it tries again
 * after it was lost, ms. ioredis' default is a minute, during which a failover announced there goes unheard.
 */
export const SENTINEL_RECONNECT_MS = 2_000;

/** ioredis' Sentinel connector, internal to ioredis: the sentinel connections of its failover detector. */
interface WithFailoverDetector {
  readonly connector?: {
    readonly failoverDetector?: {
      readonly sentinels?: ReadonlyArray<{ client?: unknown }>;
      cleanup?(): void;
    } | null;
  };
}

/**
 * The options that make an ioredis Sentinel client follow a failover away from a master that froze or was cut off.
 * Such a master answers nothing and closes nothing, so ioredis, which asks the sentinels for the master only when its
 * connection closes, would keep sending every command to it (each failing by its timeout) for as long as it stays so.
 * - `failoverDetector: true`: the client subscribes to `+switch-master` on the sentinels and reconnects when it comes
 *   (ioredis 5.3 and later; earlier versions ignore the option).
 * - `disconnectTimeout: 500`: that reconnect first closes the connection to the old master, and a frozen master never
 *   acknowledges the close; ioredis waits this long before it drops the connection anyway (default 2 s).
 * - `sentinelReconnectStrategy`: a lost connection to a sentinel is opened again after
 *   {@link SENTINEL_RECONNECT_MS}, not a minute later.
 * - `sentinelCommandTimeout` ({@link DEFAULT_COMMAND_TIMEOUT_MS}; `connect()` uses the client's command timeout): a
 *   sentinel that accepts the connection but does not answer (frozen, cut off) is given up on, and the next one asked.
 *   ioredis sets none, and a reconnect asking such a sentinel where the master is waited forever.
 *
 * Use {@link guardSentinelClient} too: a failover announced while the client reconnects would otherwise close it for
 * good.
 */
export const safeSentinelOptions: Readonly<{
  failoverDetector: true;
  disconnectTimeout: number;
  sentinelReconnectStrategy: () => number;
  sentinelCommandTimeout: number;
}> = Object.freeze({
  failoverDetector: true,
  disconnectTimeout: 500,
  sentinelReconnectStrategy: () => SENTINEL_RECONNECT_MS,
  sentinelCommandTimeout: DEFAULT_COMMAND_TIMEOUT_MS,
});

/**
 * What a Sentinel client with `failoverDetector` needs besides its options:
 * - When its connection closes, the failover detector of that connection is stopped. Left listening, it would react
 *   to a failover announced while the client reconnects (the master died; the client is asking a sentinel where the
 *   master is now) by closing the connector in the middle of that question, and ioredis then ends the client for good:
 *   every later call fails with "Connection is closed". The next connection starts a detector of its own.
 * - The errors of the failover detector's sentinel connections (a sentinel down: `ECONNREFUSED` every
 *   {@link SENTINEL_RECONNECT_MS}) go to `onError`. ioredis gives them no listener, so each would otherwise be logged
 *   as an "Unhandled error event". The detector opens its connections when the client's connection to the master
 *   opens, just before the client's `connect` event, so they are reached there.
 *
 * The connections a primitive opens with the client's `duplicate()` (a subscriber, a blocking reader) are guarded the
 * same way.
 */
export function guardSentinelClient(client: EventEmitter, onError: (error: Error) => void): void {
  const duplicate = (client as { duplicate?: unknown }).duplicate;
  if (typeof duplicate === "function") {
    Object.defineProperty(client, "duplicate", {
      configurable: true,
      writable: true,
      value: function (this: EventEmitter, ...args: unknown[]) {
        const copy = duplicate.apply(this, args) as EventEmitter;
        guardSentinelClient(copy, onError);
        return copy;
      },
    });
  }
  client.on("close", () => {
    (client as WithFailoverDetector).connector?.failoverDetector?.cleanup?.();
  });
  const routed = new WeakSet<object>();
  client.on("connect", () => {
    for (const sentinel of (client as WithFailoverDetector).connector?.failoverDetector?.sentinels ?? []) {
      const connection = sentinel.client as EventEmitter | undefined;
      if (connection === undefined || typeof connection.on !== "function" || routed.has(connection)) continue;
      routed.add(connection);
      connection.on("error", onError);
    }
  });
}
