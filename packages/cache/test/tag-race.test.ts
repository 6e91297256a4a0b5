import { connect, type RedisClient } from "@coordis/core";
import { testPrefix } from "@coordis/testing";
import { afterAll, describe, expect, inject, it } from "vitest";
import { Cache } from "../src/index.js";

const prefix = testPrefix();

describe("Cache: invalidateTag racing a set or a load of the same instance", () => {
  const clients: RedisClient[] = [];
  const client = () => {
    const c = connect(inject("coordisRedisUrl"));
    clients.push(c);
    return c;
  };
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it("a value Redis stored under the tag's old version is not served from this instance's L1", async () => {
    const options = { namespace: "tag-race", prefix, ttlMs: 600_000, checkEvictionPolicy: false } as const;
    // A's script calls, seen as they are sent (the version of a tag is read by one).
    let hook: ((keys: string[]) => void) | undefined;
    const hooked = client();
    for (const method of ["evalsha", "eval"] as const) {
      const original = (hooked[method] as (...args: unknown[]) => unknown).bind(hooked);
      (hooked as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        const sent = original(...args);
        const keys = args.slice(2, 2 + Number(args[1])).map(String);
        hook?.(keys);
        return sent;
      };
    }
    const a = new Cache(hooked, { ...options, l1: { ttlMs: 600_000 } });
    const b = new Cache(client(), options);
    try {
      await Promise.all([a.ready(), b.ready()]);
      for (let i = 0; i < 20; i++) {
        const tag = `t${i}`;
        // Both sent in one tick: the set reads the tag's version, then the invalidation deletes it (in that order in
        // Redis), so Redis keeps the set's value under the old version: a miss for every reader.
        await Promise.all([a.set(`set-${i}`, "v", { tags: [tag] }), a.invalidateTag(tag)]);
        const inRedis = await b.get(`set-${i}`);
        expect(await a.get(`set-${i}`)).toBe(inRedis);
        // The same for a load: the invalidation is sent right behind the load's read of the tag's version.
        let invalidated: Promise<void> | undefined;
        hook = (keys) => {
          if (invalidated === undefined && keys.some((k) => k.includes("cache-tag:{tag-race:l"))) {
            invalidated = a.invalidateTag(`l${i}`);
          }
        };
        await a.getOrSet(`load-${i}`, () => "v", { tags: [`l${i}`] });
        hook = undefined;
        expect(invalidated).toBeDefined();
        await invalidated;
        expect(await a.get(`load-${i}`)).toBe(await b.get(`load-${i}`));
      }
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
