import { connect, type RedisClient, RedisUnavailableError } from "@coordis/core";
import { type RedisServer, recordObserver, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../src/index.js";
import { tiers } from "./helpers.js";

const prefix = testPrefix();

describe("Cache: a change whose invalidation cannot be published", () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const client = (commandTimeoutMs = 2_000) => {
    const c = connect(server.url, { commandTimeoutMs });
    c.on("error", () => {});
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    if (server.paused) server.resume();
    for (const c of clients) c.disconnect();
    await server.stop();
  });

  // The change reaches Redis, then Redis stalls before the invalidation's PUBLISH is answered (the publish times out).
  // The call must not resolve as if every replica had been told: another replica still serves the old value from L1.
  const changes: Array<[string, (c: Cache, k: string) => Promise<unknown>, unknown]> = [
    ["set", (c, k) => c.set(k, "new"), "new"],
    ["delete", (c, k) => c.delete(k), undefined],
    ["invalidateTag", (c) => c.invalidateTag("t"), undefined],
    ["clear", (c) => c.clear(), undefined],
  ];
  for (const [name, change, after] of changes) {
    it(`${name}: resolves only once its invalidation was published, else throws RedisUnavailableError`, async () => {
      const options = { namespace: `pf-${name}`, prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
      const rec = recordObserver();
      const publisher = client(300);
      const a = new Cache(publisher, options);
      const b = new Cache(client(), { ...options, l1: { ttlMs: 600_000 }, observer: rec });
      try {
        await Promise.all([a.ready(), b.ready()]);
        await a.set("k", "old", { tags: ["t"] });
        await waitUntil(
          "B's L1 to hold k",
          async () => (await b.get("k")) === "old" && tiers(rec).at(-1) === "l1/hit",
          2_000,
        );
        // Redis stalls right when A publishes the invalidation (its change is applied by then).
        const original = publisher.publish.bind(publisher);
        let stalled = false;
        (publisher as unknown as { publish: typeof original }).publish = ((...args: Parameters<typeof original>) => {
          if (!stalled) {
            stalled = true;
            server.pause();
          }
          return original(...args);
        }) as typeof original;
        let outcome: unknown = "resolved";
        try {
          await change(a, "k");
        } catch (err) {
          outcome = err;
        }
        expect(stalled).toBe(true);
        if (outcome === "resolved") {
          // Resolved: every replica must have been told already (B answers from its L1 without Redis).
          expect(await b.get("k")).toBe(after);
        } else {
          expect(outcome).toBeInstanceOf(RedisUnavailableError);
        }
        server.resume();
        // The PUBLISH was on its way: B drops the old value once Redis resumes.
        await waitUntil("B to see the change", async () => (await b.get("k")) === after, 5_000);
      } finally {
        if (server.paused) server.resume();
        await Promise.all([a.close(), b.close()]);
      }
    });
  }
});
