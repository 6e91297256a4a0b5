import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();

describe("Cache whose invalidation subscription succeeds only after it was used", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  it("what it read before it was subscribed is never served from L1 (invalidations of that time never reached it)", async () => {
    const admin = server.adminClient();
    // B's user may not subscribe to anything yet: its subscription is refused and retried in the background.
    await admin.acl("SETUSER", "late", "on", ">pw", "~*", "+@all", "resetchannels");
    const url = new URL(server.url);
    const a = connect(server.url);
    const b = connect(`redis://late:pw@${url.host}`);
    clients.push(a, b);
    const options = { namespace: "late", prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    const rec = recordObserver();
    const writer = new Cache(a, options);
    const reader = new Cache(b, { ...options, l1: { ttlMs: 600_000 }, observer: rec });
    try {
      await Promise.all([writer.ready(), reader.ready()]);
      expect(reader.stats().busHealthy).toBe(false);
      await writer.set("k", "old");
      expect(await reader.get("k")).toBe("old"); // read from Redis (and kept in L1, not read while unsubscribed)
      await writer.set("k", "new"); // its invalidation goes to nobody
      await admin.acl("SETUSER", "late", "allchannels");
      await waitUntil("the subscription to succeed", async () => reader.stats().busHealthy, 5_000);
      expect(await reader.get("k")).toBe("new");
      expect(tiers(rec).at(-1)).toBe("l2/hit");
    } finally {
      await Promise.all([writer.close(), reader.close()]);
      admin.disconnect();
    }
  });
});
