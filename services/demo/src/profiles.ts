import { Cache } from "@coordis/cache";
import { connect, entityKeys, type RedisClient } from "@coordis/core";
import type { CoordisDecorator } from "@coordis/fastify";
import type { DemoConfig } from "./config.js";

/** What Redis stores per player. */
export interface StoredProfile {
  id: string;
  name: string;
  submissions: number;
  createdAt: number;
  updatedAt: number;
}

/** A player's profile as `GET /v1/players/:id` returns it. */
export interface Profile extends StoredProfile {
  best: number | null;
  ranks: { all: number | null; daily: number | null };
  /** The replica that built this copy (shows whether a response came from a cache). */
  loadedBy: string;
  loadedAt: number;
}

/** How long a cached profile is fresh (changes invalidate it at once on every replica). */
const PROFILE_TTL_MS = 60_000;

/**
 * Player profiles in Redis hashes (`<prefix>:player:{<id>}`), and the read path of `GET /v1/players/:id` through a
 * two-tier @coordis/cache (L1 per replica, L2 on `CACHE_REDIS_URL` or the coordination Redis). Every change deletes
 * the cached copy, which every replica's L1 drops via the cache's invalidation bus.
 */
export class ProfileStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #cache: Cache;
  readonly #cacheRedis: RedisClient | undefined;

  private constructor(redis: RedisClient, prefix: string, cache: Cache, ownCacheRedis: RedisClient | undefined) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#cache = cache;
    this.#cacheRedis = ownCacheRedis;
  }

  /** Creates the store on the plugin's connection (and a cache connection of its own when `CACHE_REDIS_URL` is set). */
  static async create(coordis: CoordisDecorator, config: DemoConfig): Promise<ProfileStore> {
    const own =
      config.cacheRedisUrl === undefined ? undefined : connect(config.cacheRedisUrl, { observer: coordis.observer });
    const cache = new Cache(
      own ?? coordis.redis,
      coordis.options({ namespace: "profiles", ttlMs: PROFILE_TTL_MS, l1: { maxEntries: 10_000 } }),
    );
    await cache.ready();
    return new ProfileStore(coordis.redis, config.prefix, cache, own);
  }

  #key(id: string): string {
    return entityKeys(this.#prefix, "player", id).base;
  }

  /** The stored profile, or null. */
  async read(id: string): Promise<StoredProfile | null> {
    const h = await this.#redis.hgetall(this.#key(id));
    if (h.name === undefined) return null;
    return {
      id,
      name: h.name,
      submissions: Number(h.submissions ?? 0),
      createdAt: Number(h.createdAt ?? 0),
      updatedAt: Number(h.updatedAt ?? 0),
    };
  }

  /** Counts a submission (creating the profile on first use) and returns the player's name. */
  async recordSubmission(id: string, name: string | undefined): Promise<{ name: string }> {
    const key = this.#key(id);
    const now = Date.now();
    const tx = this.#redis.multi().hsetnx(key, "name", name ?? id);
    if (name !== undefined) tx.hset(key, "name", name);
    const replies = await tx
      .hsetnx(key, "createdAt", now)
      .hincrby(key, "submissions", 1)
      .hset(key, "updatedAt", now)
      .hget(key, "name")
      .exec();
    const last = replies?.at(-1);
    return { name: typeof last?.[1] === "string" ? last[1] : (name ?? id) };
  }

  /** Renames an existing player; false when unknown. */
  async rename(id: string, name: string): Promise<boolean> {
    const key = this.#key(id);
    const replies = await this.#redis.multi().exists(key).hset(key, "name", name, "updatedAt", Date.now()).exec();
    if (replies?.[0]?.[1] === 1) return true;
    await this.#redis.del(key);
    return false;
  }

  /** Deletes a profile; false when there was none. */
  async remove(id: string): Promise<boolean> {
    return (await this.#redis.del(this.#key(id))) === 1;
  }

  /** The profile through the cache, loading it with `loader` on a miss (an unknown player is cached as null). */
  async get(id: string, loader: () => Promise<Profile | null>): Promise<Profile | null> {
    return this.#cache.getOrSet<Profile | null>(id, loader);
  }

  /** Drops the cached copy of `id` from L2 and from every replica's L1. */
  async invalidate(id: string): Promise<void> {
    await this.#cache.delete(id);
  }

  /** Releases what the store opened. */
  async close(): Promise<void> {
    await this.#cache.close();
    this.#cacheRedis?.disconnect();
  }
}
