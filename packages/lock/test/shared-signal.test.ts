import { getEventListeners } from "node:events";
import { connect, type RedisClient } from "@coordis/core";
import { Mutex, Semaphore } from "@coordis/lock";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// One application-wide signal (a shutdown signal) handed to many waiting acquires: each used to add its own abort
// listener, and past 10 Node printed "MaxListenersExceededWarning: Possible EventTarget memory leak detected" although
// nothing leaked. The signal now carries one listener of Coordis however many acquires wait on it.
const prefix = testPrefix("lock-shared-signal");
const WAITERS = 25;
let server: RedisServer;
let redis: RedisClient;
const warnings: Error[] = [];
const onWarning = (w: Error) => warnings.push(w);

beforeAll(async () => {
  // A server of its own: its command counts are the waiters' attempts.
  server = await startRedis();
  redis = connect(server.url);
  process.on("warning", onWarning);
});
afterAll(async () => {
  process.off("warning", onWarning);
  redis.disconnect();
  await server.stop();
});

/** Script calls the server has run so far. */
async function scriptCalls(): Promise<number> {
  const info = String(await redis.info("commandstats"));
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe.each([
  ["Mutex", (name: string) => new Mutex(redis, name, { prefix, ttlMs: 30_000 })],
  ["Semaphore", (name: string) => new Semaphore(redis, name, { prefix, permits: 1, ttlMs: 30_000 })],
] as const)("%s acquires waiting on one shared signal", (kind, make) => {
  it(`${WAITERS} of them put one abort listener on it, and its abort rejects every one with its reason`, async () => {
    const lock = make(`busy-${kind}`);
    const held = await lock.acquire();
    const shutdown = new AbortController();
    const observed = make(`busy-${kind}`);
    const waiting = Array.from({ length: WAITERS }, () =>
      observed.acquire({ waitMs: 60_000, signal: shutdown.signal }).then(
        () => "acquired",
        (err: unknown) => err,
      ),
    );
    const peak = { listeners: 0 };
    const before = await scriptCalls();
    // Every waiter has tried about three times (an attempt in flight, a backoff sleep, another attempt...): the
    // listener count is read all along.
    await waitUntil(
      "the waiters to retry",
      async () => {
        peak.listeners = Math.max(peak.listeners, getEventListeners(shutdown.signal, "abort").length);
        return (await scriptCalls()) - before >= 3 * WAITERS;
      },
      { timeoutMs: 20_000, intervalMs: 5 },
    );
    expect(peak.listeners).toBe(1);
    const reason = new Error("shutting down");
    shutdown.abort(reason);
    const outcomes = await Promise.all(waiting);
    expect(outcomes.every((o) => o === reason)).toBe(true);
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    expect(await held.release()).toBe(true);
  });
});
