import { setTimeout as sleep } from "node:timers/promises";
import { connect, type RedisClient } from "@coordis/core";
import { type Consumer, EventLog } from "@coordis/eventlog";
import { type FaultProxy, type RedisServer, startProxy, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("ellive");

// Consumers must keep reading after idle periods (reads that come back empty, claims that bring nothing) and, while
// alive, must never see an entry reclaimed by another consumer. Each test runs on a server of its own behind a
// latency proxy, so reads and claims overlap the way they do across a network.
describe("consumer liveness and redelivery", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let redis: RedisClient;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    proxy = await startProxy({ target: server });
    redis = connect(proxy.url);
    await redis.ping();
  });
  afterAll(async () => {
    redis.disconnect();
    for (const c of clients) c.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("idle consumers keep handling new entries after idle periods longer than claimIdleMs and blockMs", async () => {
    proxy.setLatency(2, 1);
    const log = new EventLog<{ burst: number }>(redis, "idle", { prefix });
    const CONSUMERS = 8;
    // One group per consumer: each of them must handle every entry.
    const seen = Array.from({ length: CONSUMERS }, () => new Set<number>());
    const consumers: Consumer<{ burst: number }>[] = [];
    for (let i = 0; i < CONSUMERS; i++) {
      const group = log.group(`g${i}`, { consumer: "c", startAt: "end" });
      await group.create();
      consumers.push(
        group.consume(
          (e) => {
            seen[i]?.add(e.data.burst);
          },
          { claimIdleMs: 20, blockMs: 10 },
        ),
      );
    }
    try {
      for (let burst = 0; burst < 3; burst++) {
        // The idle period itself is what is tested: many empty reads and claims overlap during it.
        await sleep(1_500);
        await log.append({ burst });
        await waitUntil(
          `every consumer handled burst ${burst} (${seen.filter((s) => s.has(burst)).length}/${CONSUMERS} did)`,
          () => seen.every((s) => s.has(burst)),
          5_000,
        );
      }
    } finally {
      await Promise.all(consumers.map((c) => c.stop()));
      proxy.setLatency(0);
    }
  }, 60_000);
  it("no entry is handled twice while every handler is shorter than claimIdleMs and every consumer is alive", async () => {
    proxy.setLatency(2, 1);
    const log = new EventLog<{ n: number }>(redis, "short-handlers", { prefix });
    const group = (name: string) => log.group("g", { consumer: name });
    await group("setup").create();
    const TOTAL = 60;
    const starts = new Map<number, string[]>(); // n -> consumers whose handler started it
    const failures = new Map<number, number>();
    let done = 0;
    const handler = (name: string) => async (e: { data: { n: number } }) => {
      const n = e.data.n;
      starts.set(n, [...(starts.get(n) ?? []), name]);
      await sleep(700);
      // Every 7th entry fails its first delivery: claims then bring entries while reads do.
      if (n % 7 === 0 && !failures.has(n)) {
        failures.set(n, 1);
        throw new Error("first delivery fails");
      }
      done++;
    };
    const consumers = ["a", "b", "c"].map((name) =>
      group(name).consume(handler(name), { concurrency: 2, claimIdleMs: 1_000, claimIntervalMs: 100 }),
    );
    try {
      for (let n = 0; n < TOTAL; n++) {
        await log.append({ n });
        await sleep(100);
      }
      await waitUntil(`all ${TOTAL} handled (${done} so far)`, () => done >= TOTAL, 60_000);
    } finally {
      await Promise.all(consumers.map((c) => c.stop()));
      proxy.setLatency(0);
    }
    const twice = [...starts].filter(([n, by]) => by.length > 1 + (failures.get(n) ?? 0));
    expect(twice.map(([n, by]) => `${n}: ${by.join(",")}`)).toEqual([]);
  }, 120_000);
  it("a live consumer keeps the entries it holds: a handler longer than claimIdleMs is not reclaimed elsewhere", async () => {
    proxy.setLatency(2, 1);
    const log = new EventLog<{ n: number }>(redis, "long-handlers", { prefix });
    await log.group("g", { consumer: "setup" }).create();
    const TOTAL = 6;
    const starts = new Map<number, string[]>();
    let done = 0;
    // Free slots everywhere: every consumer keeps claiming while the handlers run.
    const consumers = ["a", "b", "c"].map((name) =>
      log.group("g", { consumer: name }).consume(
        async (e) => {
          starts.set(e.data.n, [...(starts.get(e.data.n) ?? []), name]);
          await sleep(1_200); // four times claimIdleMs
          done++;
        },
        { concurrency: 8, claimIdleMs: 300, claimIntervalMs: 50 },
      ),
    );
    try {
      for (let n = 0; n < TOTAL; n++) await log.append({ n });
      await waitUntil(`all ${TOTAL} handled (${done} so far)`, () => done >= TOTAL, 30_000);
    } finally {
      await Promise.all(consumers.map((c) => c.stop()));
      proxy.setLatency(0);
    }
    expect([...starts].filter(([, by]) => by.length > 1).map(([n, by]) => `${n}: ${by.join(",")}`)).toEqual([]);
    expect(consumers.map((c) => c.stats().claimed)).toEqual([0, 0, 0]);
    expect(consumers.reduce((sum, c) => sum + c.stats().acked, 0)).toBe(TOTAL);
  }, 60_000);
});
