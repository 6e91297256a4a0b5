import { safeRedisOptions } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("eventlog-lazy-client");

/**
 * A client built with `lazyConnect: true` connects on its first command, and so do its duplicates: a consumer's and
 * a tail's blocking connection must be opened by the reader itself, or it would wait for it forever.
 */
describe("readers on a lazyConnect client", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server.stop();
  });

  it("a consumer and a tail get the entries appended", async () => {
    const redis = new Redis({ ...safeRedisOptions, host: server.host, port: server.port, lazyConnect: true });
    const log = new EventLog<{ n: number }>(redis, "lazy", { prefix });
    const handled: number[] = [];
    const consumer = log.group("g", { consumer: "c1" }).consume(async (entry) => {
      handled.push(entry.data.n);
    });
    const tailed: number[] = [];
    const stopTail = new AbortController();
    const tail = log.tail({ from: "start", signal: stopTail.signal });
    const reading = (async () => {
      for await (const entry of tail) {
        tailed.push(entry.data.n);
        if (tailed.length === 2) break;
      }
    })();
    try {
      await log.append({ n: 1 });
      await log.append({ n: 2 });
      await waitUntil(
        "the consumer and the tail to get both entries",
        () => handled.length === 2 && tailed.length === 2,
      );
      expect(handled).toEqual([1, 2]);
      expect(tailed).toEqual([1, 2]);
    } finally {
      stopTail.abort();
      await consumer.stop({ timeoutMs: 2_000 });
      await reading;
      redis.disconnect();
    }
  }, 30_000);
});
