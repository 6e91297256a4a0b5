import { connect, RedisUnavailableError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elappendout");

// README: a RedisUnavailableError means the append may or may not have happened; retry with the same idempotency key.
// An append issued while the client reconnects waits in its queue: it fails by the command timeout, and is taken out
// of the queue, so it does not run once the connection is back. The retry with the same key then appends it.
describe("an append that timed out while Redis was unreachable", () => {
  const redis = proxiedServer({ leastPrivilege: true });

  it("does not run once the connection is back; the retry with its idempotency key appends it once", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: 1_000 });
    client.on("error", () => {});
    try {
      const log = new EventLog<{ n: number }>(client, "late", { prefix });
      const observer = new EventLog<{ n: number }>(redis.direct, "late", { prefix });
      await observer.append({ n: 0 });
      await waitUntil("the client is connected", () => client.status === "ready");
      redis.proxy.refuse();
      redis.proxy.dropConnections();
      await waitUntil("the client is reconnecting", () => client.status !== "ready");
      const failed = await log.append({ n: 1 }, { idempotencyKey: "k1" }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(failed).toBeInstanceOf(RedisUnavailableError);
      expect(await observer.length()).toBe(1);
      await redis.proxy.accept();
      await waitUntil("the client is back", () => client.status === "ready");
      // Anything still queued went out before this command, and has been answered when it is.
      await client.ping();
      expect(await observer.length()).toBe(1);
      const retry = await log.append({ n: 1 }, { idempotencyKey: "k1" });
      expect(retry.duplicate).toBe(false);
      expect(await observer.length()).toBe(2);
      expect((await log.append({ n: 1 }, { idempotencyKey: "k1" })).duplicate).toBe(true);
    } finally {
      client.disconnect();
    }
  });
});
