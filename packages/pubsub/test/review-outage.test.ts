import { connect, type RedisClient } from "@coordis/core";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  EventRecorder,
  type RedisServer,
  recordObserver,
  startProxy,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("review: outages", () => {
  let server: RedisServer;
  let admin: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    admin = server.adminClient();
    await admin.ping();
  });
  afterAll(async () => {
    await server.stop();
  });
  const numsub = async (channel: string) =>
    Number(((await admin.call("PUBSUB", "NUMSUB", `${prefix}:ps:${channel}`)) as [string, number])[1]);

  it("one channel's permission revoked: the other channels are restored after the reconnect", async () => {
    await admin.call(
      "ACL",
      "SETUSER",
      "subuser",
      "on",
      ">pw",
      "~*",
      "+@all",
      "resetchannels",
      `&${prefix}:ps:keep`,
      `&${prefix}:ps:revoke`,
    );
    const client = connect(`redis://subuser:pw@127.0.0.1:${server.port}`);
    client.on("error", () => {});
    const observer = recordObserver();
    const b = new PubSub(client, { prefix, observer });
    const rec = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", rec.record);
    const got: string[] = [];
    await b.subscribe<string>("keep", (m) => {
      got.push(m);
    });
    await b.subscribe<string>("revoke", (m) => {
      got.push(m);
    });
    // Take away one channel: Redis 7 disconnects the subscriber that holds it.
    await admin.call("ACL", "SETUSER", "subuser", "resetchannels", `&${prefix}:ps:keep`);
    await waitUntil("loss", () => observer.events.some((e) => e.type === "subscriber-disconnected"));
    await waitUntil("a resubscribe attempt", () => observer.events.some((e) => e.type === "resubscribe-failed" || e.type === "resubscribed"), 5_000);
    await new Promise((r) => setTimeout(r, 1_500)); // a few retries (500 ms each)
    const failed = observer.events.filter((e) => e.type === "resubscribe-failed");
    console.log("resubscribe-failed events:", failed.length, failed[0]?.error?.message);
    console.log("NUMSUB keep:", await numsub("keep"), "resubscribed events:", rec.items.length, "stats", b.stats());
    expect(await numsub("keep")).toBe(1);
    await b.close();
    client.disconnect();
  });

  it("first subscribe while Redis is unreachable, then Redis comes: is a 'resubscribed' reported for nothing?", async () => {
    const proxy = await startProxy({ target: server });
    proxy.refuse();
    try {
      const client = connect(proxy.url, { commandTimeoutMs: 300 });
      client.on("error", () => {});
      const observer = recordObserver();
      const b = new PubSub(client, { prefix, observer });
      const rec = new EventRecorder<ResubscribedInfo>();
      b.on("resubscribed", rec.record);
      await expect(b.subscribe("never", () => {})).rejects.toMatchObject({ code: "ERR_REDIS_UNAVAILABLE" });
      await proxy.accept();
      await waitUntil("client ready", async () => (await client.ping().catch(() => "")) === "PONG", 5_000);
      // Now subscribe for real.
      await b.subscribe("now", () => {});
      await new Promise((r) => setTimeout(r, 300));
      console.log(
        "events:",
        observer.events.map((e) => e.type),
        "resubscribed:",
        rec.items,
        "stats:",
        b.stats(),
      );
      expect(rec.items).toEqual([]);
      await b.close();
      client.disconnect();
    } finally {
      await proxy.close();
    }
  });
});
