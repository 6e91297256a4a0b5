import { spawn } from "node:child_process";
import { connect } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
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

/**
 * Heartbeat interval of the PubSubs tested: what is tested holds for any beat, and every duration below is a share of
 * it. A PONG read late by more than one beat is what these cases are about, so a loaded machine only adds to it.
 */
const BEAT_MS = 1_000;

/** Blocks this thread for `ms` without spending CPU: a handler's synchronous work, an event loop held up. */
const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * The heartbeat must not take a connection that is alive for a silent one. Both cases below used to be dropped (and
 * the messages already on their way lost): the PONG is there, only not read yet.
 */
describe("PubSub heartbeat on a live connection whose PONG is not read yet", () => {
  let server: RedisServer;
  let proxy: FaultProxy;
  let admin: Redis;
  let monitor: Redis;
  /** The PINGs the server ran from the first connection that sent one since `pinger` was last cleared. */
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

  it("a handler slower than the messages arrive: the PONG waits behind them for several beats, nothing is lost", async () => {
    const client = connect(server.url);
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix: `${prefix}-backlog`, observer, heartbeatMs: BEAT_MS });
    try {
      let got = 0;
      // Synchronous work per message: 1/2000 beat (2.5 ms on the default beat), so that the messages of one read of
      // the socket take the same share of a beat whatever the beat.
      const work = BEAT_MS / 2_000;
      await bus.subscribe("burst", () => {
        got++;
        block(work);
      });
      // One script publishes them all at once: this process needs about 2.5 beats to work through them, so at least
      // one heartbeat PING is sent behind them, and its PONG is read one beat later or more.
      const n = Math.ceil((2.5 * BEAT_MS) / work);
      const receivers = await admin.eval(
        "local r = 0 for i = 1, tonumber(ARGV[1]) do r = r + redis.call('PUBLISH', KEYS[1], ARGV[2]) end return r",
        1,
        `${prefix}-backlog:ps:burst`,
        n,
        JSON.stringify({ some: "payload" }),
      );
      expect(receivers).toBe(n);
      await waitUntil("every message handled", () => got === n || observer.events.length > 0, {
        timeoutMs: 10 * BEAT_MS,
      });
      expect(observer.events.map((e) => e.type)).toEqual([]);
      expect(got).toBe(n);
      expect(bus.stats().resubscriptions).toBe(0);
    } finally {
      await bus.close();
      client.disconnect();
    }
  }, 120_000);

  it("an event loop blocked for a beat just after a PING went out: the PONG that arrived meanwhile keeps the connection", async () => {
    const client = connect(server.url) as Redis;
    // The subscriber connection, to see its heartbeat PINGs leave.
    const duplicate = client.duplicate.bind(client);
    let sub: Redis | undefined;
    client.duplicate = ((...args: Parameters<typeof duplicate>) => {
      sub = duplicate(...args);
      return sub;
    }) as typeof client.duplicate;
    const observer = recordObserver();
    const bus = new PubSub(client, { prefix: `${prefix}-blocked`, observer, heartbeatMs: BEAT_MS });
    try {
      const got: number[] = [];
      await bus.subscribe<number>("after", (m) => {
        got.push(m);
      });
      const conn = sub as Redis;
      const ping = conn.ping.bind(conn) as () => Promise<string>;
      let pinged = 0;
      let armed = true;
      conn.ping = (() => {
        pinged++;
        if (!armed) return ping();
        armed = false;
        // Redis answers this PING only once this process has read whatever was there already (a child process wakes
        // it up 100 ms later); then the event loop is held up past the next beat, after its I/O phase. When it runs
        // again, the beat comes first, with the PONG arrived but not read.
        server.pause();
        spawn("sh", ["-c", `sleep 0.1; kill -CONT ${server.pid}`], { stdio: "ignore" });
        setImmediate(() => block(BEAT_MS + 500));
        return ping();
      }) as typeof conn.ping;
      await waitUntil("the heartbeat PING and the one after it", () => pinged >= 2 || observer.events.length > 0, {
        timeoutMs: 4 * BEAT_MS,
      });
      server.resume();
      expect(observer.events.map((e) => e.type)).toEqual([]);
      expect(await bus.publish("after", 1)).toBe(1);
      await waitUntil("the message", () => got.includes(1));
      expect(bus.stats().resubscriptions).toBe(0);
    } finally {
      if (server.paused) server.resume();
      await bus.close();
      client.disconnect();
    }
  }, 120_000);
});
