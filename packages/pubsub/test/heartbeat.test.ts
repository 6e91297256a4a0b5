import { connect } from "@coordis/core";
import { HEARTBEAT_INTERVAL_MS, PubSub } from "@coordis/pubsub";
import {
  EventRecorder,
  type FaultProxy,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("PubSub heartbeat on a server of its own", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let admin: Redis;
  let monitor: Redis;
  /** Order numbers of the PINGs the server ran from the first connection that sent one (the subscriber's). */
  const pings = new EventRecorder<number>();
  let pinger: string | undefined;
  beforeAll(async () => {
    server = await startRedis();
    proxy = await startProxy({ target: server });
    admin = connect(server.adminUrl) as Redis;
    monitor = await admin.monitor();
    monitor.on("monitor", (_time: string, args: string[], source: string) => {
      if (String(args[0]).toLowerCase() !== "ping") return;
      pinger ??= source;
      if (source === pinger) pings.record(pings.items.length + 1);
    });
  });
  afterAll(async () => {
    monitor.disconnect();
    admin.disconnect();
    await proxy.close();
    await server.stop();
  });

  it("a PING answered after the command timeout but before the next beat keeps the connection (Redis slow, not gone)", async () => {
    const client = connect(proxy.url, { commandTimeoutMs: 500 });
    client.on("error", () => {});
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer });
    try {
      const got: number[] = [];
      await bus.subscribe<number>("slow", (m) => {
        got.push(m);
      });
      // Right after a heartbeat PING the server stops answering; the next PING goes out into the silence.
      await pings.waitFor(() => true, { what: "a heartbeat PING", timeoutMs: 2 * HEARTBEAT_INTERVAL_MS });
      server.pause();
      let resumed = false;
      try {
        const before = proxy.stats().bytesToTarget;
        await waitUntil("the next heartbeat PING sent", () => proxy.stats().bytesToTarget > before, {
          timeoutMs: 2 * HEARTBEAT_INTERVAL_MS,
        });
        // A command sent after it on a client with the same command timeout: once it has timed out, so has the PING.
        await expect(client.ping()).rejects.toThrow();
        server.resume();
        resumed = true;
      } finally {
        if (!resumed) server.resume();
      }
      // The PING is answered now, seconds before the next beat.
      await pings.waitFor((n) => n === 2, { what: "the late PING answered" });
      // At the next beat the connection, which did answer, is kept (a new PING), not dropped as silent.
      const outcome = await Promise.race([
        pings
          .waitFor((n) => n === 3, { what: "the next PING", timeoutMs: 3 * HEARTBEAT_INTERVAL_MS })
          .then(() => "kept"),
        observer
          .waitForEvent((e) => e.type === "connection-error" || e.type === "subscriber-disconnected", {
            what: "a drop",
            timeoutMs: 3 * HEARTBEAT_INTERVAL_MS,
          })
          .then(() => "dropped"),
      ]);
      expect(outcome).toBe("kept");
      expect(observer.events.map((e) => e.type)).toEqual([]);
      expect(await bus.publish("slow", 1)).toBe(1);
      await waitUntil("the message", () => got.includes(1));
    } finally {
      await bus.close();
      client.disconnect();
    }
  });
});
