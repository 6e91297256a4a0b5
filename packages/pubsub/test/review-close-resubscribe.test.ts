import { connect } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
import { EventRecorder, recordObserver, testPrefix } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("PubSub closed while it resubscribes after a reconnect", () => {
  const redis = proxiedServer();
  let admin: Redis;
  let monitor: Redis;
  /** Every SUBSCRIBE the server ran. */
  const subscribes = new EventRecorder<string>();
  beforeAll(async () => {
    admin = connect(redis.server.adminUrl) as Redis;
    monitor = await admin.monitor();
    monitor.on("monitor", (_time: string, args: string[]) => {
      if (String(args[0]).toLowerCase() === "subscribe") subscribes.record(String(args[1]));
    });
  });
  afterAll(async () => {
    monitor.disconnect();
    admin.disconnect();
  });

  it("reports nothing after close(): the resubscribe that close() cut short is not a resubscribe-failed", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: 5_000 });
    client.on("error", () => {});
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer });
    try {
      await bus.subscribe("ch", () => {});
      await subscribes.waitFor(() => true, { what: "the first SUBSCRIBE", timeoutMs: 5_000 });
      // Replies now take a while: the resubscribe after the reconnect is still unanswered when close() runs.
      redis.proxy.setLatency(500);
      redis.proxy.dropConnections();
      await subscribes.waitFor(() => true, { what: "the resubscribe's SUBSCRIBE", timeoutMs: 10_000, from: 1 });
      expect(observer.events.map((e) => e.type)).toContain("subscriber-disconnected");
      await bus.close();
      const closedAt = observer.events.length;
      // Every reaction to the connection's end (its unanswered commands rejected) has run by the next macrotask.
      await new Promise((resolve) => setImmediate(resolve));
      expect(observer.events.slice(closedAt).map((e) => e.type)).toEqual([]);
      expect(observer.events.map((e) => e.type)).not.toContain("resubscribe-failed");
    } finally {
      redis.proxy.setLatency(0);
      await bus.close();
      client.disconnect();
    }
  });
});
