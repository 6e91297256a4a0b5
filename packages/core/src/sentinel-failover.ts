import type { EventEmitter } from "node:events";

/**
 * How long the connection a Sentinel client keeps to each sentinel (to hear of failovers) waits before it tries again
 * after it was lost, ms. ioredis' default is a minute, during which a failover announced there goes unheard.
 */
export const SENTINEL_RECONNECT_MS = 2_000;

/** ioredis' Sentinel connector, internal to ioredis: the sentinel connections of its failover detector. */
interface WithFailoverDetector {
  readonly connector?: { readonly failoverDetector?: { readonly sentinels?: ReadonlyArray<{ client?: unknown }> } };
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
 */
export const safeSentinelOptions: Readonly<{
  failoverDetector: true;
  disconnectTimeout: number;
  sentinelReconnectStrategy: () => number;
}> = Object.freeze({
  failoverDetector: true,
  disconnectTimeout: 500,
  sentinelReconnectStrategy: () => SENTINEL_RECONNECT_MS,
});

/**
 * Sends the errors of the failover detector's sentinel connections (a sentinel down: `ECONNREFUSED` every
 * {@link SENTINEL_RECONNECT_MS}) to `onError`. ioredis gives them no listener, so each would otherwise be logged as an
 * "Unhandled error event". The detector opens its connections when the client's connection to the master opens, just
 * before the client's `connect` event, so they are reached there. The connections a primitive opens with the
 * client's `duplicate()` (a subscriber, a blocking reader) are routed the same way.
 */
export function routeSentinelErrors(client: EventEmitter, onError: (error: Error) => void): void {
  const duplicate = (client as { duplicate?: unknown }).duplicate;
  if (typeof duplicate === "function") {
    Object.defineProperty(client, "duplicate", {
      configurable: true,
      writable: true,
      value: function (this: EventEmitter, ...args: unknown[]) {
        const copy = duplicate.apply(this, args) as EventEmitter;
        routeSentinelErrors(copy, onError);
        return copy;
      },
    });
  }
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
