import { BentoCache, bentostore } from "bentocache";
import { memoryDriver } from "bentocache/drivers/memory";
import { redisDriver } from "bentocache/drivers/redis";
import { type CacheModule, coordisExports } from "../coordis.js";
import type { Scenario, SetupContext } from "../types.js";
import { populate } from "./populate.js";

const GROUP = "cache";
const RAW_GET = "cache/raw-get";
const RAW_MISS = "cache/raw-miss-load";
const VALUE = { id: 42, name: "cached value", tags: ["a", "b"] };
const SERIALIZED = JSON.stringify(VALUE);
const TTL = "10m";
const TTL_MS = 600_000;
/** The L2-hit rows' entries outlive any run: one that expired would fail the row (see `hit`). */
const L2_TTL = "24h";
const L2_TTL_MS = 86_400_000;

/** Keys the L1-hit rows cycle through (all held by the L1). */
const L1_KEYS = 1_000;

const key = (n: number, size: number) => `item-${n % size}`;

/** A key outside every cycle: the L2-hit rows' one-entry L1 is given it before each round and count. */
const L1_DECOY = "l1-decoy";

/**
 * Fails an L2-hit read that found nothing: a read the cache answered without Redis (it judged Redis unreachable)
 * would otherwise count as a fast hit with no round trip.
 */
function hit(value: unknown): void {
  if (value === undefined) throw new Error("an L2-hit read found nothing: Redis was not asked or the entry is gone");
}

/** A bentocache with an L1 of `l1Items` entries (memory driver) over Redis (L2). */
function bento(ctx: SetupContext, l1Items: number) {
  const cache = new BentoCache({
    default: "main",
    stores: {
      main: bentostore()
        .useL1Layer(memoryDriver({ maxItems: l1Items }))
        .useL2Layer(redisDriver({ connection: ctx.client() })),
    },
  });
  return cache.namespace(ctx.prefix);
}

async function coordisCache(ctx: SetupContext, l1MaxEntries: number) {
  const { Cache } = await coordisExports<CacheModule>("cache", ["Cache"]);
  return new Cache(ctx.client(), {
    namespace: "bench",
    l1: { maxEntries: l1MaxEntries },
    ttlMs: TTL_MS,
    prefix: ctx.prefix,
  });
}

async function closeCoordis(cache: { close?(): unknown; dispose?(): unknown }) {
  if (typeof cache.close === "function") await cache.close();
  else if (typeof cache.dispose === "function") await cache.dispose();
}

// L1 hit: 1,000 keys, all in the L1 (set, and read once, before). L2 hit: the L1 holds one entry while reads cycle
// through `populate` keys, so every read misses L1 and finds the value in Redis. Miss + load: a new key per call.

/** Cache: raw GET (and GET + SET for a miss) against bentocache and Coordis: L1 hit, L2 hit, miss + load. */
export function cacheScenarios(): Scenario[] {
  return [
    {
      id: RAW_GET,
      group: GROUP,
      name: "raw GET (hit)",
      kind: "raw",
      topology: "single",
      async setup(ctx) {
        const redis = ctx.client();
        await populate(ctx.populate, (j) => redis.set(`${ctx.prefix}:${key(j, ctx.populate)}`, SERIALIZED));
        return { op: async (n) => JSON.parse((await redis.get(`${ctx.prefix}:${key(n, ctx.populate)}`)) as string) };
      },
    },
    {
      id: RAW_MISS,
      group: GROUP,
      name: "raw GET miss + SET",
      kind: "raw",
      topology: "single",
      async setup(ctx) {
        const redis = ctx.client();
        return {
          async op(n) {
            const k = `${ctx.prefix}:miss-${n}`;
            if ((await redis.get(k)) !== null) throw new Error("unexpected hit");
            await redis.set(k, SERIALIZED, "PX", TTL_MS);
          },
        };
      },
    },
    {
      id: "cache/bentocache-l1",
      group: GROUP,
      name: "bentocache L1 hit",
      kind: "peer",
      topology: "single",
      baseline: RAW_GET,
      async setup(ctx) {
        const cache = bento(ctx, L1_KEYS * 2);
        await populate(L1_KEYS, (j) => cache.set({ key: key(j, L1_KEYS), value: VALUE, ttl: TTL }));
        return {
          op: (n) => cache.get({ key: key(n, L1_KEYS) }),
          reset: () => populate(L1_KEYS, (j) => cache.get({ key: key(j, L1_KEYS) })),
          teardown: () => cache.disconnect(),
        };
      },
    },
    {
      id: "cache/bentocache-l2",
      group: GROUP,
      name: "bentocache L2 hit (L1 miss)",
      kind: "peer",
      topology: "single",
      baseline: RAW_GET,
      async setup(ctx) {
        const cache = bento(ctx, 1);
        await populate(ctx.populate, (j) => cache.set({ key: key(j, ctx.populate), value: VALUE, ttl: L2_TTL }));
        await cache.set({ key: L1_DECOY, value: VALUE, ttl: L2_TTL });
        return {
          op: async (n) => hit(await cache.get({ key: key(n, ctx.populate) })),
          reset: async () => {
            await cache.get({ key: L1_DECOY });
          },
          teardown: () => cache.disconnect(),
        };
      },
    },
    {
      id: "cache/bentocache-miss",
      group: GROUP,
      name: "bentocache miss + load (getOrSet)",
      kind: "peer",
      topology: "single",
      baseline: RAW_MISS,
      async setup(ctx) {
        const cache = bento(ctx, 10_000);
        return {
          op: (n) => cache.getOrSet({ key: `miss-${n}`, factory: async () => VALUE, ttl: TTL }),
          teardown: () => cache.disconnect(),
        };
      },
    },
    {
      id: "cache/coordis-l1",
      group: GROUP,
      name: "Coordis Cache L1 hit",
      kind: "coordis",
      topology: "single",
      baseline: RAW_GET,
      reference: "cache/bentocache-l1",
      async setup(ctx) {
        const cache = await coordisCache(ctx, L1_KEYS * 2);
        await populate(L1_KEYS, (j) => cache.set(key(j, L1_KEYS), VALUE));
        // Re-read before every round: an L1 entry is served for l1.ttlMs (default 5 s), then refreshed from Redis.
        const warm = () => populate(L1_KEYS, (j) => cache.get(key(j, L1_KEYS)));
        await warm();
        return { op: (n) => cache.get(key(n, L1_KEYS)), reset: warm, teardown: () => closeCoordis(cache) };
      },
    },
    {
      id: "cache/coordis-l2",
      group: GROUP,
      name: "Coordis Cache L2 hit (L1 miss)",
      kind: "coordis",
      topology: "single",
      baseline: RAW_GET,
      reference: "cache/bentocache-l2",
      roundTrips: 2,
      roundTripsNote: "HMGET and TIME written together: one network round trip, two commands",
      async setup(ctx) {
        const cache = await coordisCache(ctx, 1);
        await populate(ctx.populate, (j) => cache.set(key(j, ctx.populate), VALUE, { ttlMs: L2_TTL_MS }));
        await cache.set(L1_DECOY, VALUE, { ttlMs: L2_TTL_MS });
        return {
          op: async (n) => hit(await cache.get(key(n, ctx.populate))),
          // The one-entry L1 holds the key read last. Rounds and the round-trip count draw from one counter shared
          // by every scenario, so the first read after a pause could be that same key (1 in `populate`) and be
          // served from L1 with no round trip: before each, the L1 is given a key outside the cycle instead.
          reset: async () => {
            await cache.get(L1_DECOY);
          },
          teardown: () => closeCoordis(cache),
        };
      },
    },
    {
      id: "cache/coordis-miss",
      group: GROUP,
      name: "Coordis Cache miss + load (getOrSet)",
      kind: "coordis",
      topology: "single",
      baseline: RAW_MISS,
      reference: "cache/bentocache-miss",
      async setup(ctx) {
        const cache = await coordisCache(ctx, 10_000);
        return {
          op: (n) => cache.getOrSet(`miss-${n}`, async () => VALUE),
          teardown: () => closeCoordis(cache),
        };
      },
    },
  ];
}
