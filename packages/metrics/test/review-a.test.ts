import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { coordisMetrics } from "@coordis/metrics";
import { Queue } from "@coordis/queue";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix("mreview");

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("review: metrics with real Redis", () => {
  let redis: RedisClient;
  beforeAll(() => {
    redis = connect(inject("coordisRedisUrl"));
  });
  afterAll(() => redis.disconnect());

  it("two coordisMetrics() on one registry: trackEventLogGroup on the second shows up", async () => {
    const registry = new Registry();
    coordisMetrics({ registry });
    const second = coordisMetrics({ registry });
    const log = new EventLog(redis, `g-${Date.now()}`, { prefix });
    for (let i = 0; i < 3; i++) await log.append(i);
    const group = log.group("workers", { consumer: "c1" });
    await group.create();
    second.trackEventLogGroup(log.name, "workers", () => group.info());
    const text = await registry.metrics();
    console.log(text.split("\n").filter((l) => l.startsWith("coordis_eventlog_group")));
    expect(sample(text, `coordis_eventlog_group_lag{log="${log.name}",group="workers"}`)).toBe(3);
  });

  it("group source read count per scrape", async () => {
    const registry = new Registry();
    const m = coordisMetrics({ registry });
    let reads = 0;
    m.trackEventLogGroup("l", "g", async () => {
      reads++;
      return { pending: 1, lag: 2 };
    });
    await registry.metrics();
    console.log("group source reads per scrape:", reads);
  });

  it("a source that throws synchronously / is not a function: does the whole scrape fail?", async () => {
    const registry = new Registry();
    const m = coordisMetrics({ registry });
    m.observer.onOperation?.({ primitive: "lock", op: "acquire", outcome: "acquired", durationMs: 1 });
    const untrack = m.trackEventLogGroup("l", "g", (() => {
      throw new Error("boom");
    }) as never);
    const r1 = await registry.metrics().then(
      (t) => `ok ${t.length}`,
      (e: unknown) => `REJECTED: ${String(e)}`,
    );
    untrack();
    m.trackEventLogGroup("l2", "g2", undefined as never);
    const r2 = await registry.metrics().then(
      (t) => `ok ${t.length}`,
      (e: unknown) => `REJECTED: ${String(e)}`,
    );
    // the queue variant, for comparison
    const registry2 = new Registry();
    const m2 = coordisMetrics({ registry: registry2 });
    m2.trackQueue("q", (() => {
      throw new Error("boom");
    }) as never);
    const r3 = await registry2.metrics().then(
      (t) => `ok ${t.length}`,
      (e: unknown) => `REJECTED: ${String(e)}`,
    );
    console.log({ r1, r2, r3 });
    expect(r1.startsWith("ok")).toBe(true);
    expect(r2.startsWith("ok")).toBe(true);
  });

  it("untrack of an older registration of the same log/group removes the newer one", async () => {
    const registry = new Registry();
    const m = coordisMetrics({ registry });
    const untrackOld = m.trackEventLogGroup("l", "g", async () => ({ pending: 1, lag: 1 }));
    m.trackEventLogGroup("l", "g", async () => ({ pending: 5, lag: 5 }));
    untrackOld();
    const text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_group_lag{log="l",group="g"}')).toBe(5);
  });

  it("maxLabelValues validation", async () => {
    const results: string[] = [];
    for (const v of [Number.NaN, -1, 0, "10", 1.5, Number.POSITIVE_INFINITY]) {
      try {
        const m = coordisMetrics({ registry: new Registry(), maxLabelValues: v as never });
        for (let i = 0; i < 200; i++) m.observer.onEvent?.({ primitive: "p", type: `t${i}` });
        const text = await m.registry.metrics();
        results.push(`${String(v)}: accepted, series=${text.split("\n").filter((l) => l.startsWith("coordis_events_total{")).length}`);
      } catch (e) {
        results.push(`${String(v)}: ${String(e)}`);
      }
    }
    console.log(results);
  });

  it("appends_total against real appends (batched, dup, conflict)", async () => {
    const registry = new Registry();
    const m = coordisMetrics({ registry });
    const log = new EventLog(redis, `c-${Date.now()}`, { prefix, batch: true, observer: m.observer });
    const rs = await Promise.allSettled([
      log.append({ a: 1 }, { idempotencyKey: "a" }),
      log.append({ a: 1 }, { idempotencyKey: "a" }),
      log.append({ a: 2 }, { idempotencyKey: "a" }),
      log.append({ b: 1 }),
      log.append({ b: 2 }),
    ]);
    console.log(rs.map((r) => r.status));
    const text = await registry.metrics();
    expect(sample(text, 'coordis_eventlog_appends_total{outcome="appended"}')).toBe(3);
    expect(sample(text, 'coordis_eventlog_appends_total{outcome="duplicate"}')).toBe(1);
    expect(sample(text, 'coordis_eventlog_appends_total{outcome="error"}')).toBe(1);
  });
});

describe("review: scrape while Redis is paused", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    server.resume();
    await server.stop();
  });

  it("scrape time and figures with group and queue tracked, Redis SIGSTOPped", async () => {
    const client = server.client();
    const registry = new Registry();
    const m = coordisMetrics({ registry });
    const log = new EventLog(client, "paused", { prefix });
    for (let i = 0; i < 4; i++) await log.append(i);
    const group = log.group("g", { consumer: "c" });
    await group.create();
    const queue = new Queue(client, "pq", { prefix, observer: m.observer });
    await queue.add("x" as never);
    m.trackEventLogGroup(log.name, "g", () => group.info());
    m.trackQueue(queue.name, () => queue.counts());
    const before = await registry.metrics();
    server.pause();
    const t0 = performance.now();
    const during = await registry.metrics();
    const took = performance.now() - t0;
    server.resume();
    console.log({
      took,
      lagBefore: sample(before, 'coordis_eventlog_group_lag{log="paused",group="g"}'),
      lagDuring: sample(during, 'coordis_eventlog_group_lag{log="paused",group="g"}'),
      qBefore: sample(before, 'coordis_queue_lag{queue="pq"}'),
      qDuring: sample(during, 'coordis_queue_lag{queue="pq"}'),
    });
    await queue.close();
    client.disconnect();
  });
});
