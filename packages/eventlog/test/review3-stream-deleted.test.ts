import type { RedisClient } from "@coordis/core";
import { EventLog, type EventLogOptions } from "@coordis/eventlog";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elstreamdel");
let n = 0;
const name = (label: string) => `${label}-${n++}`;

// The log's stream key deleted while a consumer's handlers still hold entries of it, longer than a third of
// claimIdleMs (their refreshes find no group); the handlers then succeed. The consumer must go on: create its group
// again, handle what is appended after, hold nothing forever, and stop at once.
describe("the stream deleted while handlers hold its entries", () => {
  let server: RedisServer;
  let redis: RedisClient;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    redis = server.client();
    admin = server.adminClient();
  });
  afterAll(async () => {
    await server.stop();
  });

  for (const [label, options, keepMeta] of [
    ["plain, meta deleted too", {}, false],
    ["SHA-1 chain, meta kept", { chain: true }, true],
  ] as Array<[string, EventLogOptions, boolean]>) {
    it(`${label}: the consumer goes on with the new stream and holds nothing of the old one`, async () => {
      const observer = recordObserver();
      const log = new EventLog<number>(redis, name("del"), { prefix, observer });
      const producer = new EventLog<number>(redis, log.name, { prefix, ...options });
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const started: number[] = [];
      const handled: number[] = [];
      const consumer = log.group("g", { consumer: "c" }).consume(
        async (e) => {
          started.push(e.data);
          if (e.data < 100) await gate;
          handled.push(e.data);
        },
        { concurrency: 4, blockMs: 100, claimIdleMs: 300, claimIntervalMs: 50 },
      );
      try {
        for (let i = 0; i < 3; i++) await producer.append(i);
        await waitUntil("the three handlers run", () => started.length === 3);
        await admin.del(log.keys.stream, ...(keepMeta ? [] : [log.keys.meta]));
        // Held past a third of claimIdleMs: a refresh of the held entries runs against the deleted stream.
        await waitUntil("a refresh found no group, or the group is back", () =>
          observer.events.some((e) => e.type === "consume-refresh-error" || e.type === "group-recreated"),
        );
        release();
        await waitUntil("the old handlers settled", () => handled.length === 3);
        for (let i = 100; i < 105; i++) await producer.append(i);
        await waitUntil("the new entries are handled", () => handled.filter((d) => d >= 100).length === 5, 10_000);
        await waitUntil("nothing held", () => {
          const s = consumer.stats();
          return s.inflight === 0 && s.queued === 0 && s.acking === 0;
        });
        const info = await log.group("g", { consumer: "m" }).info();
        expect(info).toMatchObject({ pending: 0, lag: 0 });
        expect(handled.filter((d) => d >= 100).sort()).toEqual([100, 101, 102, 103, 104]);
        expect(await log.deadLetters()).toEqual([]);
        const seqs = (await log.read()).entries.map((e) => e.seq);
        expect(seqs).toEqual(keepMeta ? [4, 5, 6, 7, 8] : [1, 2, 3, 4, 5]);
      } finally {
        release();
        const t0 = performance.now();
        await consumer.stop({ timeoutMs: 5_000 });
        expect(performance.now() - t0).toBeLessThan(2_000);
      }
    });
  }
});
