import { connect, type RedisClient } from "@coordis/core";
import {
  type FaultProxy,
  type FaultSchedule,
  faultSchedule,
  type RedisServer,
  startProxy,
  startRedis,
} from "@coordis/testing";

/** A Redis of the queue and event-log scenarios; see {@link startDurableRedis}. */
export interface DurableRedis {
  readonly server: RedisServer;
  /** In front of `server`: the producers' network (latency, drops, partitions). */
  readonly proxy: FaultProxy;
  /** The producers' client, through the proxy (command timeout 1 s). */
  readonly producer: RedisClient;
  /** A client straight to the server for the final checks (command timeout 10 s), opened on first use. */
  checker(): RedisClient;
  /** Disconnects the clients, closes the proxy, stops the server. */
  close(): Promise<void>;
}

/**
 * Starts one Redis with AOF and `appendfsync always` (a kill loses no acknowledged write) as the least-privilege
 * user, and a fault proxy in front of it seeded with `seed`.
 */
export async function startDurableRedis(seed: number): Promise<DurableRedis> {
  const server = await startRedis({ appendOnly: true, config: { appendfsync: "always" }, leastPrivilege: true });
  let proxy: FaultProxy;
  try {
    proxy = await startProxy({ target: server, seed });
  } catch (err) {
    await server.stop();
    throw err;
  }
  const producer = connect(proxy.url, { commandTimeoutMs: 1_000 });
  let checker: RedisClient | undefined;
  return {
    server,
    proxy,
    producer,
    checker() {
      checker ??= connect(server.url, { commandTimeoutMs: 10_000 });
      return checker;
    },
    async close() {
      producer.disconnect();
      checker?.disconnect();
      await proxy.close();
      await server.stop();
    },
  };
}

/**
 * The fault schedule of a {@link DurableRedis} and `processes` worker processes over `durationMs`: the server paused,
 * killed and restarted (AOF keeps every acknowledged write), the producers' proxy slowed, dropped and blackholed, the
 * workers SIGSTOPped and SIGKILLed; faults of 200–1,200 ms, about a dozen over the run (every 0.3–2 s).
 */
export function durableRedisSchedule(seed: number, durationMs: number, processes: number): FaultSchedule {
  return faultSchedule({
    seed,
    generate: {
      durationMs,
      faults: ["pause", "kill", "restart", "latency", "drop", "blackhole"],
      meanIntervalMs: Math.min(2_000, Math.max(300, Math.round(durationMs / 12))),
      targets: { servers: 1, proxies: 1, processes },
      faultMs: [200, 1_200],
      latencyMs: [5, 60],
    },
  });
}
