import { connect, type RedisClient } from "@coordis/core";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();

describe("Cache whose invalidation channel is refused when it resubscribes", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  it("does not read L1 until Redis accepts the channel again (the invalidations of that time never reach it)", async () => {
    const admin = server.adminClient();
    await admin.acl("SETUSER", "revoked", "on", ">pw", "~*", "+@all", "allchannels");
    const url = new URL(server.url);
    const a = connect(server.url);
    const b = connect(`redis://revoked:pw@${url.host}`);
    clients.push(a, b, admin);
    const options = { namespace: "revoked", prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    const rec = recordObserver();
    const writer = new Cache(a, options);
    const reader = new Cache(b, { ...options, l1: { ttlMs: 600_000 }, observer: rec });
    try {
      await Promise.all([writer.ready(), reader.ready()]);
      expect(reader.stats().busHealthy).toBe(true);
      // The reader's user loses its channels: Redis closes its subscriber connection, which reconnects and is refused.
      await admin.acl("SETUSER", "revoked", "resetchannels");
      await waitUntil(
        "the resubscription to be refused",
        () => rec.events.some((e) => e.primitive === "pubsub" && e.type === "resubscribe-failed"),
        5_000,
      );
      await writer.set("k", "old");
      expect(await reader.get("k")).toBe("old");
      await writer.set("k", "new"); // its invalidation cannot reach the reader
      expect(await reader.get("k")).toBe("new");
      expect(tiers(rec).slice(-2)).toEqual(["l2/hit", "l2/hit"]);
      expect(reader.stats().busHealthy).toBe(false);
      // Channels granted again: the retry is accepted and L1 is used again.
      await admin.acl("SETUSER", "revoked", "allchannels");
      await waitUntil("the subscription to be restored", () => reader.stats().busHealthy, 5_000);
      expect(await reader.get("k")).toBe("new");
      expect(await reader.get("k")).toBe("new");
      expect(tiers(rec).slice(-2)).toEqual(["l2/hit", "l1/hit"]);
    } finally {
      await Promise.all([writer.close(), reader.close()]);
    }
  });
});
