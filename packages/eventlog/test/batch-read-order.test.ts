import { connect, type RedisClient } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix("elbatchorder");

// README, Micro-batching: "read, length, head and verify first send the appends this instance has queued, so they
// see them". Also while the client's script calls wait for their turn: behind the first call of a script on a client
// (a probe), or after a restart emptied the server's script cache.
describe("reads after queued batched appends, while script calls wait for their turn", () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
  });
  afterAll(async () => {
    await server.stop();
  });

  for (const chain of [false, true]) {
    it(`length(), head() and read() see every append queued before them (chain: ${chain})`, async () => {
      const redis: RedisClient = connect(server.url);
      try {
        const log = new EventLog<number>(redis, `order-${chain}`, { prefix, chain, batch: { maxDelayMs: 1000 } });
        // A fresh client: the first append is its first call of the append script (a probe; calls after it wait).
        const first = log.append(0);
        const len1 = log.length();
        const more = [log.append(1), log.append(2)];
        const [len2, head, page] = [log.length(), log.head(), log.read()];
        const appended = await Promise.all([first, ...more]);
        const ids = appended.map((r) => r.id);
        const seen = await Promise.all([len1, len2, head, page]);
        // At least what was queued before it (appends queued later may have been sent first).
        expect(seen[0]).toBeGreaterThanOrEqual(1);
        expect(seen[1]).toBe(3);
        expect(seen[2]?.id).toBe(ids[2]);
        expect(seen[3].entries.map((e) => e.id)).toEqual(ids);
      } finally {
        redis.disconnect();
      }
    });
  }
});
