import { connect, type RedisClient } from "@coordis/core";
import { HEARTBEAT_INTERVAL_MS, PubSub, type ResubscribedInfo } from "@coordis/pubsub";
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
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startForgetfulProxy } from "./forgetful-proxy.js";

const prefix = testPrefix();

describe("PubSub through a fault proxy (a server of its own)", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let proxy: FaultProxy;
  const clients: RedisClient[] = [];
  const buses: PubSub[] = [];
  /** A client through the proxy, its connection errors going nowhere (they are expected here). */
  const client = (commandTimeoutMs?: number) => {
    const c = connect(proxy.url, commandTimeoutMs === undefined ? {} : { commandTimeoutMs });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  /** Subscribers on the server (not through the proxy) of one of this file's channels. */
  const subscribersOf = async (channel: string) => {
    const reply = (await admin.call("PUBSUB", "NUMSUB", `${prefix}:ps:${channel}`)) as [string, number];
    return Number(reply[1]);
  };
  beforeAll(async () => {
    server = await startRedis({ leastPrivilege: true });
    admin = server.adminClient();
    await admin.ping();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    proxy = await startProxy({ target: server });
  });
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((b) => b.close()));
    for (const c of clients.splice(0)) c.disconnect();
    await proxy.close();
  });

  it("a subscribe whose SUBSCRIBE was lost with the connection resolves once the resubscription confirmed it", async () => {
    const b = new PubSub(client(), { prefix });
    buses.push(b);
    const resubscribed = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", resubscribed.record);
    await b.subscribe("kept", () => {});
    proxy.blackhole();
    const got: number[] = [];
    const pending = b.subscribe<number>("in-flight", (m) => {
      got.push(m);
    });
    const outcome = pending.then(
      () => "resolved",
      (err: { code?: string }) => err.code ?? String(err),
    );
    // The SUBSCRIBE went out and was lost; the partition heals by resetting that connection.
    await waitUntil("the SUBSCRIBE lost in the partition", () => proxy.stats().bytesDiscarded > 0);
    proxy.heal();
    const info = await resubscribed.waitFor(() => true, { what: "'resubscribed'" });
    // Redis confirmed both channels on the new connection, the one asked for during the partition included.
    expect(info).toMatchObject({ channels: 2, patterns: 0 });
    expect(await subscribersOf("in-flight")).toBe(1);
    expect(await outcome).toBe("resolved");
    expect(await b.publish("in-flight", 1)).toBe(1);
    await waitUntil("the message on the channel subscribed during the partition", () => got.includes(1));
    expect(b.stats()).toMatchObject({ subscriptions: 2, channels: 2 });
  });

  it("a subscribe that failed while Redis was unreachable leaves no subscription on Redis once it is back", async () => {
    const observer = recordObserver();
    const b = new PubSub(client(300), { prefix, observer });
    buses.push(b);
    const resubscribed = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", resubscribed.record);
    await b.subscribe("still-there", () => {});
    proxy.refuse();
    proxy.dropConnections();
    await waitUntil("the loss noticed", () => observer.events.some((e) => e.type === "subscriber-disconnected"));
    // Queued for the reconnect; it times out first, so the caller is told the handler is not registered.
    await expect(b.subscribe("gave-up", () => {})).rejects.toMatchObject({ code: "ERR_REDIS_UNAVAILABLE" });
    expect(b.stats()).toMatchObject({ subscriptions: 1, channels: 1 });
    await proxy.accept();
    const info = await resubscribed.waitFor(() => true, { what: "'resubscribed'" });
    expect(info).toMatchObject({ channels: 1, patterns: 0 });
    // Nobody listens on "gave-up": Redis must not count a subscriber there (a publish would report a receiver
    // that drops every message).
    expect(await subscribersOf("gave-up")).toBe(0);
    expect(await subscribersOf("still-there")).toBe(1);
  });

  it("a second handler of a channel subscribed while Redis is unreachable waits for Redis too: rejected, not registered", async () => {
    const observer = recordObserver();
    const b = new PubSub(client(300), { prefix, observer });
    buses.push(b);
    const resubscribed = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", resubscribed.record);
    const got: string[] = [];
    await b.subscribe<number>("shared", (m) => void got.push(`first ${m}`));
    proxy.refuse();
    proxy.dropConnections();
    await waitUntil("the loss noticed", () => observer.events.some((e) => e.type === "subscriber-disconnected"));
    // Redis confirms nothing while it is unreachable: the channel being subscribed for another handler changes nothing.
    const second = b.subscribe<number>("shared", (m) => void got.push(`second ${m}`));
    await expect(second).rejects.toMatchObject({ code: "ERR_REDIS_UNAVAILABLE" });
    expect(b.stats()).toMatchObject({ subscriptions: 1, channels: 1 });
    await proxy.accept();
    await resubscribed.waitFor(() => true, { what: "'resubscribed'" });
    // The first handler stays subscribed; the rejected one gets nothing.
    expect(await subscribersOf("shared")).toBe(1);
    expect(await b.publish("shared", 1)).toBe(1);
    await waitUntil("the message to the first handler", () => got.includes("first 1"));
    // A third handler subscribed while Redis is back resolves as before, and gets the next message.
    await b.subscribe<number>("shared", (m) => void got.push(`third ${m}`));
    expect(await b.publish("shared", 2)).toBe(1);
    await waitUntil("the message to the third handler", () => got.includes("third 2"));
    expect(got.filter((g) => g.startsWith("second"))).toEqual([]);
  });

  it("a first connect that fails is no loss: no 'subscriber-disconnected', no 'resubscribed' once Redis is reachable", async () => {
    proxy.refuse();
    const observer = recordObserver();
    const b = new PubSub(client(300), { prefix, observer });
    buses.push(b);
    await expect(b.subscribe("never-connected", () => {})).rejects.toMatchObject({ code: "ERR_REDIS_UNAVAILABLE" });
    await proxy.accept();
    const got: number[] = [];
    await b.subscribe<number>("first", (m) => void got.push(m));
    expect(await b.publish("first", 1)).toBe(1);
    await waitUntil("delivered", () => got.includes(1));
    expect(observer.events.map((e) => e.type).filter((t) => t !== "connection-error")).toEqual([]);
    expect(b.stats().resubscriptions).toBe(0);
    expect(await subscribersOf("never-connected")).toBe(0);
  });

  // On the default beat, and on a custom one: noticed within two beats, which the default (5 s) could never do.
  for (const heartbeatMs of [undefined, 1_000]) {
    const beat = heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
    it(`heartbeatMs ${heartbeatMs ?? "default"}: a subscriber connection the network dropped silently (no FIN, no RST) is noticed within two beats, replaced and resubscribed`, async () => {
      const forgetful = await startForgetfulProxy(server);
      try {
        const subscriberClient = connect(forgetful.url);
        subscriberClient.on("error", () => {});
        clients.push(subscriberClient);
        const observer = recordObserver();
        const b = new PubSub(subscriberClient, {
          prefix,
          observer,
          ...(heartbeatMs === undefined ? {} : { heartbeatMs }),
        });
        buses.push(b);
        const resubscribed = new EventRecorder<ResubscribedInfo>();
        b.on("resubscribed", resubscribed.record);
        const got: number[] = [];
        await b.subscribe<number>("forgotten", (m) => {
          got.push(m);
        });
        // Published straight to the server, not through the proxy.
        const publisher = new PubSub(server.client(), { prefix });
        buses.push(publisher);
        expect(await publisher.publish("forgotten", 1)).toBe(1);
        await waitUntil("the message before", () => got.includes(1));

        expect(forgetful.forget()).toBe(2); // the client's own connection and the subscriber connection
        // Redis still counts the subscriber, whose messages now vanish: only the subscriber side can find out.
        expect(await publisher.publish("forgotten", 2)).toBe(1);
        // The next beat's PING goes unanswered and the beat after it gives the connection up: two beats at most
        // (1 s for timers running late on a loaded machine).
        const silent = await observer.waitForEvent(
          (e) => e.type === "connection-error" && /silent for/.test(String(e.error?.message)),
          { what: "the heartbeat giving the connection up", timeoutMs: 2 * beat + 1_000 },
        );
        expect(silent.error?.message).toContain(`silent for ${beat} ms`);
        const info = await resubscribed.waitFor(() => true, {
          what: "'resubscribed' after the silent loss",
          timeoutMs: 5_000,
        });
        expect(info).toMatchObject({ channels: 1, patterns: 0 });
        expect(observer.events.filter((e) => e.type === "subscriber-disconnected")).toHaveLength(1);
        await waitUntil("a message after the resubscription", async () => {
          await publisher.publish("forgotten", 3);
          return got.includes(3);
        });
        expect(got).not.toContain(2); // at most once: lost while the connection was dead, as documented
      } finally {
        await Promise.all(buses.splice(0).map((b) => b.close()));
        await forgetful.close();
      }
    });
  }
});
