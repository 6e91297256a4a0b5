import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Cache } from "@coordis/cache";
import { CoordisError, connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { Leaderboard } from "@coordis/leaderboard";
import { Mutex } from "@coordis/lock";
import { PubSub } from "@coordis/pubsub";
import { RateLimiter } from "@coordis/ratelimit";
import {
  DeadlineExceededError,
  describeSchedule,
  type FaultProxy,
  faultSchedule,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
  tryWaitUntil,
  Watchdog,
} from "@coordis/testing";
import { scenarioResult } from "../lib/result.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

/** Every client's command timeout, ms. */
const COMMAND_TIMEOUT_MS = 500;
/** Slack for a busy 2-core machine (event-loop delay, GC), ms. */
const MARGIN_MS = 1_000;
/** The lock's acquire wait, ms: its deadline is waitMs + one command timeout + margin. */
const LOCK_WAIT_MS = 300;
/** A call that missed its deadline may still settle this long before it counts as hanging, ms. */
const HANG_GRACE_MS = 3_000;

/** A representative public call of one primitive and its documented deadline. */
interface Probe {
  name: string;
  /** Sequential Redis round trips (each bounded by the command timeout), or the lock's wait on top of one. */
  deadlineMs: number;
  call(seq: number): Promise<unknown>;
}

/**
 * Deadlines under network faults: one proxy in front of one server gets latency (up to 2 × 300 ms per round trip,
 * beyond the 500 ms command timeout), dropped connections and partitions, while every primitive's representative
 * calls run in loops. Each call must resolve or reject (with a `CoordisError`) within its documented deadline:
 * round trips × command timeout (+ `waitMs` for lock acquire) + a 1 s margin, and none may hang.
 */
export const deadlinesScenario: ChaosScenario = {
  name: "deadlines",
  description: "a call per primitive under latency/drop/blackhole; each settles within its deadline, none hangs",
  defaultDurationMs: 60_000,
  async run({ seed, durationMs, log }): Promise<ScenarioResult> {
    const started = performance.now();
    const schedule = faultSchedule({
      seed,
      generate: {
        durationMs,
        faults: ["latency", "drop", "blackhole"],
        meanIntervalMs: Math.min(2_000, Math.max(300, Math.round(durationMs / 12))),
        targets: { servers: 0, proxies: 1 },
        faultMs: [200, 1_500],
        latencyMs: [20, 300],
      },
    });
    log(describeSchedule(schedule));
    const violations = new Violations();
    const watchdog = new Watchdog();
    const prefix = testPrefix();
    let server: RedisServer | undefined;
    let proxy: FaultProxy | undefined;
    const clients: RedisClient[] = [];
    const closers: Array<() => Promise<void>> = [];
    const outcomes: Record<string, Record<string, number>> = {};
    try {
      server = await startRedis({ leastPrivilege: true });
      proxy = await startProxy({ target: server, seed });
      const redis = connect(proxy.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
      clients.push(redis);
      const rt = (n: number) => n * COMMAND_TIMEOUT_MS + MARGIN_MS;

      const mutex = new Mutex(redis, "deadline-lock", { prefix, ttlMs: 2_000 });
      const limiter = new RateLimiter(redis, { prefix, rules: [{ limit: 1_000_000, windowMs: 60_000 }] });
      const board = new Leaderboard(redis, "deadline-board", { prefix });
      const eventLog = new EventLog<{ n: number }>(redis, "deadline-log", { prefix, maxLen: 1_000 });
      const bus = new PubSub(redis, { prefix });
      // The breaker's cooldown bounds how soon the cache tries Redis again after an outage; it must fit in the recovery
      // window checked below (1 s of grace + 1.5 s).
      const cache = new Cache(redis, {
        namespace: "deadline",
        prefix,
        ttlMs: 60_000,
        checkEvictionPolicy: false,
        breaker: { cooldownMs: 500 },
      });
      closers.push(
        () => bus.close(),
        () => cache.close(),
      );
      const probes: Probe[] = [
        {
          name: "lock.acquire+release",
          // acquire: waitMs plus the attempt in flight; release: one round trip.
          deadlineMs: LOCK_WAIT_MS + rt(2),
          async call() {
            const lease = await mutex.acquire({ waitMs: LOCK_WAIT_MS });
            await lease.release();
          },
        },
        { name: "ratelimit.consume", deadlineMs: rt(1), call: (i) => limiter.consume(`k${i % 8}`) },
        { name: "leaderboard.submit", deadlineMs: rt(1), call: (i) => board.submit(`m${i % 50}`, i) },
        { name: "leaderboard.top", deadlineMs: rt(1), call: () => board.top(10) },
        { name: "eventlog.append", deadlineMs: rt(1), call: (i) => eventLog.append({ n: i }) },
        { name: "eventlog.read", deadlineMs: rt(1), call: () => eventLog.read({ limit: 10 }) },
        { name: "pubsub.publish", deadlineMs: rt(1), call: (i) => bus.publish("deadline", i) },
        // set = write script + invalidation publish; getOrSet miss = read+lock, write+unlock, publish.
        { name: "cache.set", deadlineMs: rt(2), call: (i) => cache.set(`c${i % 8}`, i) },
        {
          name: "cache.getOrSet",
          deadlineMs: rt(3),
          call: (i) => cache.getOrSet(`g${i}`, async () => i, { ttlMs: 5_000 }),
        },
      ];

      let stop = false;
      const loop = async (probe: Probe) => {
        const tally: Record<string, number> = {};
        outcomes[probe.name] = tally;
        for (let seq = 0; !stop; seq++) {
          const what = `${probe.name} #${seq}`;
          try {
            await watchdog.watch(probe.call(seq), probe.deadlineMs, what);
            tally.ok = (tally.ok ?? 0) + 1;
          } catch (err) {
            if (err instanceof DeadlineExceededError) {
              tally.deadlineMissed = (tally.deadlineMissed ?? 0) + 1;
              violations.add("deadline", err.message);
            } else if (err instanceof CoordisError) {
              tally[err.code] = (tally[err.code] ?? 0) + 1;
            } else {
              tally.foreign = (tally.foreign ?? 0) + 1;
              violations.add("non-coordis-error", `${what}: ${(err as Error).name}: ${(err as Error).message}`);
            }
            await sleep(5);
          }
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      await Promise.all([redis.ping(), bus.subscribe("deadline-sub", () => {})]);
      const loops = probes.map(loop);
      const faultLog = await runSchedule(schedule, { proxies: [proxy] });
      log(`faults done: ${faultLog.injected} injected`);
      await sleep(1_000); // a second of healthy service: every probe must succeed again
      const okBefore = Object.fromEntries(probes.map((p) => [p.name, outcomes[p.name]?.ok ?? 0]));
      await sleep(1_500);
      stop = true;
      await Promise.all(loops);
      for (const p of probes) {
        if ((outcomes[p.name]?.ok ?? 0) <= (okBefore[p.name] ?? 0)) {
          violations.add("no-recovery", `${p.name}: no successful call in the 1.5 s after the faults were healed`);
        }
      }
      await tryWaitUntil(() => watchdog.pending === 0, { timeoutMs: HANG_GRACE_MS, intervalMs: 20 });
      for (const h of watchdog.hanging)
        violations.add("hang", `${h.what} still pending ${HANG_GRACE_MS} ms after its deadline`);
      return scenarioResult(started, violations, {
        scenario: "deadlines",
        operations: watchdog.watched,
        faultsInjected: faultLog.injected,
        seed,
        details: {
          outcomes,
          deadlines: Object.fromEntries(probes.map((p) => [p.name, p.deadlineMs])),
          commandTimeoutMs: COMMAND_TIMEOUT_MS,
          marginMs: MARGIN_MS,
          hung: watchdog.hanging.length,
          faultsByKind: faultLog.byKind,
          durationMs,
        },
      });
    } finally {
      for (const close of closers) await close().catch(() => {});
      for (const c of clients) c.disconnect();
      await proxy?.close();
      await server?.stop();
    }
  },
};
