import { connect, type RedisClient } from "@coordis/core";
import { type Entry, EventLog } from "@coordis/eventlog";
import {
  type FaultProxy,
  type RedisServer,
  startOutage,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
  withDeadline,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elclose");
/** Margin for a loaded machine on top of the documented bound, ms. */
const MARGIN_MS = 1_500;

/** How long `p` took; fails when it takes longer than `capMs` (an unbounded close hangs the test no longer). */
async function timed(p: Promise<unknown>, capMs: number, what: string): Promise<number> {
  const started = performance.now();
  await withDeadline(p, capMs, what);
  return performance.now() - started;
}

describe("bounded close of consumers and tails after a Redis outage (fault proxy blackhole)", () => {
  let server: RedisServer;
  let direct: RedisClient;
  let proxy: FaultProxy;
  let client: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    direct = connect(server.url);
  });
  afterAll(async () => {
    direct.disconnect();
    await server.stop();
  });

  /** A client through a fresh proxy. */
  async function viaProxy(): Promise<void> {
    proxy = await startProxy({ target: server });
    client = connect(proxy.url);
    client.on("error", () => {});
    await client.ping();
  }

  /** Blackholes the proxy, drops its connections and waits until the client reconnected into the partition. */
  const partition = () => startOutage(proxy, "blackhole-then-reconnect");

  async function cleanup(): Promise<void> {
    client.disconnect();
    await proxy.close();
  }

  it("consumer.stop({ timeoutMs }) resolves within its deadline while the client is stuck reconnecting", async () => {
    await viaProxy();
    try {
      const log = new EventLog<number>(client, "consume", { prefix });
      const handled: number[] = [];
      const consumer = log
        .group("g", { consumer: "c1" })
        .consume((e) => void handled.push(e.data), { blockMs: 10_000 });
      await new EventLog<number>(direct, "consume", { prefix }).append(1);
      await waitUntil("first entry handled", () => handled.length === 1, 10_000);
      await waitUntil("acknowledged", () => consumer.stats().acked === 1, 10_000);
      await partition();
      const took = await timed(consumer.stop({ timeoutMs: 1_000 }), 20_000, "consumer.stop()");
      expect(took).toBeLessThan(1_000 + MARGIN_MS);
    } finally {
      await cleanup();
    }
  });

  it("a tail ends within its bound when aborted or returned during the outage", async () => {
    await viaProxy();
    try {
      const log = new EventLog<number>(client, "tail", { prefix, chain: true });
      await new EventLog<number>(direct, "tail", { prefix, chain: true }).append(0);
      for (const how of ["abort", "return"] as const) {
        const controller = new AbortController();
        const iterator = log
          .tail({ from: "start", blockMs: 10_000, signal: controller.signal })
          [Symbol.asyncIterator]();
        const first = (await iterator.next()) as IteratorResult<Entry<number>>;
        expect(first.value?.data).toBe(0);
        await partition();
        const pending = iterator.next();
        if (how === "abort") controller.abort();
        const ended = how === "abort" ? pending : Promise.all([iterator.return?.(), pending]);
        const took = await timed(ended, 20_000, `the tail to end (${how})`);
        expect(took).toBeLessThan(200 + MARGIN_MS);
        expect(await pending).toEqual({ done: true, value: undefined });
        proxy.heal();
        await client.ping();
      }
    } finally {
      await cleanup();
    }
  });
});
