import { connect } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
import { EventRecorder, recordObserver, testPrefix, waitUntil } from "@coordis/testing";
import { proxiedServer } from "@coordis/testing/vitest";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
/**
 * Heartbeat interval of the PubSub tested: what is tested holds for any beat. 2 s rather than 1 s: the answer must come
 * before the next beat, and timers and the proxy running late on a loaded machine must not eat that margin (1.2 s).
 */
const BEAT_MS = 2_000;
/** Added per direction by the proxy: a PING's answer comes about 2 × this (0.4 beat) after it was sent. */
const LATENCY_MS = BEAT_MS / 5;
/** Command timeout of the client: its PINGs are answered 4 times later. */
const COMMAND_TIMEOUT_MS = BEAT_MS / 10;

describe("PubSub heartbeat on a server of its own", () => {
  const redis = proxiedServer();
  let admin: Redis;
  let monitor: Redis;
  /** Order numbers of the PINGs the server ran from the first connection that sent one (the subscriber's). */
  const pings = new EventRecorder<number>();
  let pinger: string | undefined;
  beforeAll(async () => {
    admin = connect(redis.server.adminUrl) as Redis;
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
  });

  it("a PING answered after the command timeout but before the next beat keeps the connection (Redis slow, not gone)", async () => {
    const client = connect(redis.proxy.url, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
    client.on("error", () => {});
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix, observer, heartbeatMs: BEAT_MS });
    try {
      const got: number[] = [];
      await bus.subscribe<number>("slow", (m) => {
        got.push(m);
      });
      // From now on every reply takes about 0.4 beat to arrive: each heartbeat PING is answered well after the client's
      // command timeout (0.1 beat) but well before the next beat.
      redis.proxy.setLatency(LATENCY_MS);
      const first = await pings.waitFor(() => true, { what: "a heartbeat PING", timeoutMs: 2 * BEAT_MS });
      // At the next beats the connection, which did answer, is kept (new PINGs on it), not dropped as silent.
      const outcome = await Promise.race([
        pings
          .waitFor((n) => n === first + 2, { what: "two more PINGs", timeoutMs: 4 * BEAT_MS })
          .then(() => "kept")
          .catch(() => "neither"),
        observer
          .waitForEvent((e) => e.type === "connection-error" || e.type === "subscriber-disconnected", {
            what: "a drop",
            timeoutMs: 4 * BEAT_MS,
          })
          .then(() => "dropped")
          .catch(() => "neither"),
      ]);
      expect(outcome).toBe("kept");
      expect(observer.events.map((e) => e.type)).toEqual([]);
      redis.proxy.setLatency(0);
      expect(await bus.publish("slow", 1)).toBe(1);
      await waitUntil("the message", () => got.includes(1));
    } finally {
      await bus.close();
      client.disconnect();
    }
  });
});
