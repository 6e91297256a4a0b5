import { connect, type RedisClient } from "@coordis/core";
import { PubSub, type ResubscribedInfo } from "@coordis/pubsub";
import {
  EventRecorder,
  type RedisSentinelSetup,
  recordObserver,
  startRedisSentinel,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("PubSub across a Sentinel failover (master, one replica, one Sentinel)", () => {
  let setup: RedisSentinelSetup;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    setup = await startRedisSentinel({
      replicas: 1,
      downAfterMs: 1_000,
      leastPrivilege: true,
    });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await setup?.stop();
  });

  it("after the master dies and the replica is promoted, subscriptions are restored on it and 'resubscribed' is emitted", async () => {
    const redis = connect(setup.url);
    redis.on("error", () => {});
    clients.push(redis);
    const observer = recordObserver();
    const b = new PubSub(redis, { prefix, observer });
    const resubscribed = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", resubscribed.record);
    const got: number[] = [];
    await b.subscribe<number>("failover", (m) => {
      got.push(m);
    });
    expect(await b.publish("failover", 1)).toBe(1);
    await waitUntil("the message before the failover", () => got.includes(1));

    const oldMaster = setup.master;
    await oldMaster.kill();
    const promoted = await setup.waitForFailover(oldMaster);
    const info = await resubscribed.waitFor(() => true, { what: "'resubscribed'", timeoutMs: 30_000 });
    expect(info).toMatchObject({ channels: 1, patterns: 0 });
    expect(observer.events.filter((e) => e.type === "subscriber-disconnected")).toHaveLength(1);
    // The subscription lives on the promoted server now.
    const admin = promoted.adminClient();
    const [, count] = (await admin.call("PUBSUB", "NUMSUB", b.redisChannel("failover"))) as [string, number];
    expect(Number(count)).toBe(1);
    await waitUntil(
      "a message after the failover",
      async () => {
        await b.publish("failover", 2).catch(() => 0);
        return got.includes(2);
      },
      { timeoutMs: 30_000 },
    );
    expect(b.stats().resubscriptions).toBe(1);
    await b.close();
  }, 120_000);
});
