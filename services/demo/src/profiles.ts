import { Cache } from "@coordis/cache";
import { connect, entityKeys, type RedisClient } from "@coordis/core";
import type { CoordisDecorator } from "@coordis/fastify";
import type { DemoConfig } from "./config.js";
import type { PlayerStats } from "./model.js";

/** What Redis stores per player. */
export interface StoredProfile {
  id: string;
  name: string;
  submissions: number;
  /** Sum of every submitted score (the stats job's average is `total / submissions`). */
  total: number;
  createdAt: number;
  updatedAt: number;
}

/** A player's profile as `GET /v1/players/:id` returns it. */
export interface Profile extends StoredProfile {
  best: number | null;
  /** What the player-stats job computed last (null until its first run). */
  stats: PlayerStats | null;
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
    const [name, submissions, total, createdAt, updatedAt] = await this.#redis.hmget(
      this.#key(id),
      "name",
      "submissions",
      "total",
      "createdAt",
      "updatedAt",
    );
    if (name === null || name === undefined) return null;
    return {
      id,
      name,
      submissions: Number(submissions ?? 0),
      total: Number(total ?? 0),
      createdAt: Number(createdAt ?? 0),
      updatedAt: Number(updatedAt ?? 0),
    };
  }

  /**
   * Counts a submission of `score` (creating the profile on first use) and returns the player's name, the submission's
   * number (1 for the first one) and when the profile was created. Uses only commands the least-privilege Coordis ACL
   * user is granted (HINCRBY, HSET, HMGET; no MULTI, no HSETNX): one pipelined round trip, plus one more the first
   * time, to fill in the fields a new profile lacks.
   */
  async recordSubmission(
    id: string,
    name: string | undefined,
    score: number,
  ): Promise<{ name: string; submission: number; createdAt: number }> {
    const key = this.#key(id);
    const now = Date.now();
    const replies = await this.#redis
      .pipeline()
      .hincrby(key, "submissions", 1)
      .hincrby(key, "total", score)
      .hset(key, ...(name === undefined ? [] : ["name", name]), "updatedAt", now)
      .hmget(key, "name", "createdAt")
      .exec();
    const [submission, , , [storedName, createdAt]] = pipelineValues(replies) as [
      number,
      number,
      number,
      Array<string | null>,
    ];
    const missing: Array<string | number> = [];
    if (storedName === null) missing.push("name", id);
    if (createdAt === null) missing.push("createdAt", now);
    if (missing.length > 0) await this.#redis.hset(key, ...missing);
    return { name: storedName ?? id, submission, createdAt: createdAt === null ? now : Number(createdAt) };
  }

  /** Renames an existing player; false when unknown. */
  async rename(id: string, name: string): Promise<boolean> {
    const key = this.#key(id);
    if ((await this.#redis.hexists(key, "name")) !== 1) return false;
    await this.#redis.hset(key, "name", name, "updatedAt", Date.now());
    return true;
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

/** The values of a pipeline's replies, in order; throws the first command's error, or when the pipeline failed. */
function pipelineValues(replies: Array<[Error | null, unknown]> | null): unknown[] {
  if (replies === null) throw new Error("the Redis pipeline returned no reply");
  return replies.map(([err, value]) => {
    if (err !== null) throw err;
    return value;
  });
}
