import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { RedisUnavailableError } from "@coordis/core";
import type { Violations } from "./workers.js";

/** Options of {@link produce}. */
export interface ProduceOptions {
  /** Items to produce, numbered 0..count-1. */
  readonly count: number;
  /** Concurrent producers taking the next number. */
  readonly producers: number;
  /** Spread the calls over this long, ms: item n is not sent before n × spreadMs / count (default: at once). */
  readonly spreadMs?: number;
  /** Sends item n; resolves once acknowledged, rejects with RedisUnavailableError when the outcome is unknown. */
  readonly call: (n: number) => Promise<void>;
  /** Records an error other than RedisUnavailableError (the item is given up). */
  readonly violations: Violations;
  /** Violation kind of such an error, e.g. `append-error`. */
  readonly errorKind: string;
}

/** What {@link produce} did. */
export interface ProduceCounts {
  /** Calls made, retries included. */
  calls: number;
  /** Calls that repeated an item after RedisUnavailableError. */
  retries: number;
}

/**
 * The producers of the queue and event-log scenarios: `producers` concurrent loops send items 0..count-1, each item
 * retried (after 10 ms doubling up to 200 ms) until it is acknowledged, as long as the failure leaves its outcome
 * unknown (RedisUnavailableError: the server or the network is down). Idempotent calls make a retry harmless: the
 * item is added once.
 */
export async function produce(options: ProduceOptions): Promise<ProduceCounts> {
  const { count, producers, spreadMs = 0, call, violations, errorKind } = options;
  const counts: ProduceCounts = { calls: 0, retries: 0 };
  const from = performance.now();
  let next = 0;
  const loop = async () => {
    for (let n = next++; n < count; n = next++) {
      // Pacing of the workload (so items keep coming while the faults hit), not a wait for anything.
      const wait = from + (n * spreadMs) / count - performance.now();
      if (wait > 1) await sleep(wait);
      for (let attempt = 0; ; attempt++) {
        counts.calls++;
        if (attempt > 0) counts.retries++;
        try {
          await call(n);
          break;
        } catch (err) {
          if (!(err instanceof RedisUnavailableError)) {
            violations.add(errorKind, `item ${n}: ${(err as Error).name}: ${(err as Error).message}`);
            break;
          }
          await sleep(Math.min(200, 10 * 2 ** Math.min(attempt, 5)));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: producers }, loop));
  return counts;
}
