import { Cache } from "@coordis/cache";
import { connect, type RedisClient } from "@coordis/core";
import { PubSub } from "@coordis/pubsub";
import { testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";

const prefix = testPrefix();

// The cache's invalidation bus lives under a channel kind of its own (`<prefix>:cache-bus:<namespace>`): channels
// and patterns an app's PubSub names, which may come from its users (a chat room), cannot reach it. It used to be
// `<prefix>:ps:cache.<namespace>`, where a user's room named "cache.products" evicted that namespace's L1 entries,
// or all of them, on every replica, and psubscribe("*") read every invalidated key.
describe("a cache's invalidation bus and an app's own PubSub", () => {
  const clients: RedisClient[] = [];
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("a PubSub channel a user names cannot reach a cache's invalidation bus", async () => {
    const redis = connect(inject("coordisRedisUrl"));
    const other = connect(inject("coordisRedisUrl"));
    clients.push(redis, other);
    const options = { namespace: "products", prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    const replica = new Cache(redis, options);
    const writer = new Cache(other, options);
    const chat = new PubSub(other, { prefix });
    try {
      await Promise.all([replica.ready(), writer.ready()]);
      await writer.set("p1", 1);
      await writer.set("p2", 2);
      // Read until both are in the replica's L1 (the invalidations of the writer's own sets may still be on their way
      // and evict one once).
      await waitUntil(
        "both entries in the replica's L1",
        async () => {
          await replica.get("p1");
          await replica.get("p2");
          return replica.stats().l1Entries === 2;
        },
        5_000,
      );
      // A chat room (any channel whose name comes from a user) named after the cache's invalidation channel.
      await chat.publish("cache.products", { p: "someone", s: 1, k: "p1" });
      await chat.publish("cache.products", { p: "someone-else", s: 9 });
      // A real invalidation on the same connection and channel, after them: once it arrived, so did they.
      await writer.delete("p2");
      await waitUntil("the real invalidation of p2", () => replica.stats().l1Entries <= 1, 5_000);
      expect(replica.stats()).toMatchObject({ l1Entries: 1, gaps: 0 });
      expect(await replica.get("p1")).toBe(1);
    } finally {
      await chat.close();
      await writer.close();
      await replica.close();
    }
  });

  it("a pattern subscription of the app's PubSub does not receive the cache's invalidations", async () => {
    // The admin user: the suite's least-privilege user may not subscribe to a pattern it was not granted literally.
    const redis = connect(inject("coordisAdminRedisUrl"));
    clients.push(redis);
    const writer = new Cache(redis, { namespace: "secrets", prefix, ttlMs: 600_000, checkEvictionPolicy: false });
    const chat = new PubSub(redis, { prefix });
    const heard: string[] = [];
    try {
      await writer.ready();
      await chat.psubscribe("*", (_message, meta) => {
        heard.push(meta.channel);
      });
      await writer.set("account-42", 1);
      // A message of the app's own after the invalidation, on the same connection: once it arrived, so did anything
      // of the cache's that the pattern matches.
      await chat.publish("marker", 1);
      await waitUntil("the app's own message", () => heard.includes("marker"), 5_000);
      expect(heard).toEqual(["marker"]);
    } finally {
      await chat.close();
      await writer.close();
    }
  });
});
