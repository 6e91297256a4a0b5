import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { Cache } from "@coordis/cache";
import { type CoordisEvent, connect, type RedisClient } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
import {
  describeSchedule,
  type FaultLog,
  type FaultProxy,
  faultSchedule,
  type RedisServer,
  runSchedule,
  startProxy,
  startRedis,
  testPrefix,
} from "@coordis/testing";
import { scenarioResult } from "../lib/result.js";
import { Violations } from "../lib/workers.js";
import type { ChaosScenario, ScenarioResult } from "../scenario.js";

/** `resubscribed` must follow the heal of a connection-breaking fault within this time (the issue's 2 s), ms. */
const RESUBSCRIBE_WITHIN_MS = 2_000;
/** Scheduling slack on a loaded 2-core machine on top of that, ms. */
const SLACK_MS = 300;
/** Readers' L1 lifetime (the bound for invalidations lost without a detectable sign), ms. */
const L1_TTL_MS = 1_500;
/** A read may return a version older than one acknowledged this long before it started (delivery / L1 bound), ms. */
const STALE_BOUND_MS = Math.max(2_000, L1_TTL_MS) + 500;
const KEYS = ["k0", "k1", "k2", "k3"];

/** Versions acknowledged by the writer, per key: times (ms, this process' clock) and versions, both ascending. */
class VersionOracle {
  readonly #acks = new Map<string, { t: number[]; v: number[] }>();

  ack(key: string, version: number, at: number): void {
    const a = this.#acks.get(key) ?? { t: [], v: [] };
    a.t.push(at);
    a.v.push(version);
    this.#acks.set(key, a);
  }

  /** When `version` of `key` was acknowledged (NaN when it never was). */
  at(key: string, version: number): number {
    const a = this.#acks.get(key);
    const i = a === undefined ? -1 : a.v.indexOf(version);
    return i < 0 ? Number.NaN : (a?.t[i] as number);
  }

  /** The newest version of `key` acknowledged at or before `at`; 0 when none. */
  before(key: string, at: number): number {
    const a = this.#acks.get(key);
    if (a === undefined) return 0;
    let lo = 0;
    let hi = a.t.length; // first index with t > at
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((a.t[mid] as number) <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? 0 : (a.v[lo - 1] as number);
  }
}

/**
 * Merges the outages a fault log caused for one connection (`affects` picks the faults that break it) into windows
 * [start, end]; faults closer than `joinMs` join one window (one resubscribe may cover both).
 */
function outageWindows(
  log: FaultLog,
  affects: (target: string, index: number, fault: string) => boolean,
  joinMs: number,
) {
  const raw = log.entries
    .filter((e) => e.injectedAtMs !== undefined && affects(e.step.target, e.step.index, e.step.fault))
    .map((e) => ({ start: e.injectedAtMs as number, end: e.healedAtMs ?? (e.injectedAtMs as number) }))
    .sort((a, b) => a.start - b.start);
  const merged: Array<{ start: number; end: number }> = [];
  for (const w of raw) {
    const last = merged[merged.length - 1];
    if (last !== undefined && w.start <= last.end + joinMs) last.end = Math.max(last.end, w.end);
    else merged.push({ ...w });
  }
  return merged;
}

/**
 * Pub/sub and cache under Redis restarts and partitions. Pub/sub: a subscriber behind a proxy (partitioned,
 * dropped) while a publisher publishes every 20 ms; after every outage the subscriber emits `resubscribed` within
 * 2 s of the heal and receives messages again. Cache: a writer instance bumps versions of 4 keys with `set`; two
 * reader instances behind proxies `get` them; a read never returns a version older than one acknowledged more than
 * the documented bound before it started, nor, once the reader reported a gap, one acknowledged before that gap.
 */
export const pubsubCacheScenario: ChaosScenario = {
  name: "pubsub-cache",
  description:
    "subscriber and cache readers partitioned/dropped, Redis restarted; resubscribed ≤ 2 s, no stale L1 read",
  defaultDurationMs: 60_000,
  async run({ seed, durationMs, log }): Promise<ScenarioResult> {
    const started = performance.now();
    const schedule = faultSchedule({
      seed,
      generate: {
        durationMs,
        faults: ["restart", "blackhole", "drop"],
        meanIntervalMs: Math.min(3_000, Math.max(500, Math.round(durationMs / 10))),
        targets: { servers: 1, proxies: 3 },
        faultMs: [200, 1_500],
      },
    });
    log(describeSchedule(schedule));
    const violations = new Violations();
    const prefix = testPrefix();
    const clients: RedisClient[] = [];
    const closers: Array<() => Promise<void>> = [];
    const proxies: FaultProxy[] = [];
    let server: RedisServer | undefined;
    const counts = { published: 0, received: 0, writes: 0, writeErrors: 0, reads: 0, readErrors: 0, l1Undefined: 0 };
    const client = (url: string) => {
      const c = connect(url, { commandTimeoutMs: 500 });
      clients.push(c);
      return c;
    };
    try {
      server = await startRedis({ leastPrivilege: true });
      for (let i = 0; i < 3; i++) proxies.push(await startProxy({ target: server, seed: seed + i }));
      const [subProxy, proxyB, proxyC] = proxies as [FaultProxy, FaultProxy, FaultProxy];

      // Pub/sub.
      const t0 = { at: 0 };
      const resubscribedAt: number[] = [];
      const receivedAt: number[] = [];
      const subscriber = new PubSub(client(subProxy.url), { prefix });
      const publisher = new PubSub(client(server.url), { prefix });
      closers.push(
        () => subscriber.close(),
        () => publisher.close(),
      );
      subscriber.on("resubscribed", () => resubscribedAt.push(performance.now() - t0.at));
      await subscriber.subscribe<number>("chaos", () => {
        counts.received++;
        receivedAt.push(performance.now() - t0.at);
      });

      // Cache.
      const oracle = new VersionOracle();
      const gaps: Record<string, number[]> = { B: [], C: [] };
      const gapReasons: Record<string, string[]> = { B: [], C: [] };
      const cache = (url: string, label?: "B" | "C") => {
        const c = new Cache(client(url), {
          namespace: "chaos",
          prefix,
          ttlMs: 60_000,
          l1: { ttlMs: L1_TTL_MS },
          checkEvictionPolicy: false,
          ...(label === undefined
            ? {}
            : {
                observer: {
                  onEvent(e: CoordisEvent) {
                    if (e.type === "gap") {
                      gaps[label]?.push(performance.now());
                      gapReasons[label]?.push(String(e.attributes?.reason));
                    }
                  },
                },
              }),
        });
        closers.push(() => c.close());
        return c;
      };
      const writer = cache(server.url);
      const readers = { B: cache(proxyB.url, "B"), C: cache(proxyC.url, "C") };
      await Promise.all([writer.ready(), readers.B.ready(), readers.C.ready()]);

      let stop = false;
      const publishLoop = async () => {
        for (let n = 0; !stop; n++) {
          try {
            await publisher.publish("chaos", n);
            counts.published++;
          } catch {
            // Redis restarting: the next one goes through
          }
          await sleep(20);
        }
      };
      const writeLoop = async () => {
        for (let v = 1; !stop; v++) {
          const key = KEYS[v % KEYS.length] as string;
          try {
            await writer.set(key, v);
            oracle.ack(key, v, performance.now());
            counts.writes++;
          } catch {
            counts.writeErrors++;
            await sleep(20);
          }
        }
      };
      const readLoop = async (label: "B" | "C", seq: number) => {
        const reader = readers[label];
        for (let i = seq; !stop; i++) {
          // L1 hits and short-circuited calls settle in microtasks: yield to timers and I/O every iteration.
          await new Promise((resolve) => setImmediate(resolve));
          const key = KEYS[i % KEYS.length] as string;
          const readStart = performance.now();
          let got: number | undefined;
          try {
            got = await reader.get<number>(key);
            counts.reads++;
          } catch {
            counts.readErrors++;
            await sleep(20);
            continue;
          }
          if (got === undefined) {
            counts.l1Undefined++;
            continue;
          }
          const bound = oracle.before(key, readStart - STALE_BOUND_MS);
          if (got < bound) {
            violations.add(
              "stale-read",
              `${label} read ${key} = ${got} although ${bound} was acknowledged ≥ ${STALE_BOUND_MS} ms before the read`,
            );
          }
          const gapList = gaps[label] as number[];
          const lastGap = gapList.length === 0 ? undefined : (gapList[gapList.length - 1] as number);
          if (lastGap !== undefined && lastGap < readStart) {
            const floor = oracle.before(key, lastGap);
            if (got < floor) {
              violations.add(
                "stale-after-gap",
                `${label} read ${key} = ${got} (read started +${(readStart - t0.at).toFixed(0)} ms, took ${(performance.now() - readStart).toFixed(0)} ms) after a gap (${gapReasons[label]?.[gapList.length - 1]}) at +${(lastGap - t0.at).toFixed(0)} ms, but ${floor} was acknowledged before it (version ${got} at +${(oracle.at(key, got) - t0.at).toFixed(0)} ms, ${floor} at +${(oracle.at(key, floor) - t0.at).toFixed(0)} ms); reader stats ${JSON.stringify(reader.stats())}`,
              );
            }
          }
        }
      };
      const loops = [
        publishLoop(),
        writeLoop(),
        readLoop("B", 0),
        readLoop("B", 1),
        readLoop("C", 0),
        readLoop("C", 1),
      ];
      t0.at = performance.now();
      const faultLog = await runSchedule(schedule, { servers: [server], proxies });
      const healedAt = performance.now() - t0.at;
      // Quiet period: the last outage's resubscribe can still be on its way.
      await sleep(RESUBSCRIBE_WITHIN_MS + SLACK_MS + 200);
      stop = true;
      await Promise.all(loops);

      // Every outage of the subscriber's connection is followed by `resubscribed` within the bound after its heal,
      // and messages flow again afterwards.
      const windows = outageWindows(
        faultLog,
        (target, index, fault) => (target === "server" && fault === "restart") || (target === "proxy" && index === 0),
        RESUBSCRIBE_WITHIN_MS,
      );
      let outages = 0;
      for (const w of windows) {
        outages++;
        const deadline = w.end + RESUBSCRIBE_WITHIN_MS + SLACK_MS;
        const hit = resubscribedAt.find((t) => t > w.start && t <= deadline);
        const late = resubscribedAt.find((t) => t > deadline);
        // A partition the subscriber never noticed (no byte lost) needs no resubscribe: messages keep flowing.
        const flowed = receivedAt.some((t) => t > w.end && t <= deadline);
        if (hit === undefined && !(flowed && late === undefined && resubscribedAt.every((t) => t <= w.start))) {
          violations.add(
            "resubscribe-late",
            `outage ${w.start}–${w.end} ms: resubscribed ${late === undefined ? "never" : `at ${late.toFixed(0)} ms`} (deadline ${deadline} ms)`,
          );
        }
      }
      if (!receivedAt.some((t) => t > healedAt)) violations.add("no-delivery", "no message received after the faults");

      return scenarioResult(started, violations, {
        scenario: "pubsub-cache",
        operations: counts.published + counts.writes + counts.writeErrors + counts.reads + counts.readErrors,
        faultsInjected: faultLog.injected,
        seed,
        details: {
          ...counts,
          subscriberOutages: outages,
          resubscribed: resubscribedAt.length,
          gapsB: gaps.B?.length,
          gapsC: gaps.C?.length,
          staleBoundMs: STALE_BOUND_MS,
          l1TtlMs: L1_TTL_MS,
          faultsByKind: faultLog.byKind,
          durationMs,
        },
      });
    } finally {
      for (const close of closers) await close().catch(() => {});
      for (const c of clients) c.disconnect();
      for (const p of proxies) await p.close();
      await server?.stop();
    }
  },
};
