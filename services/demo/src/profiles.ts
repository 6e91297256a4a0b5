import { createHash } from "node:crypto";
import { Cache } from "@coordis/cache";
import { connect, defineScript, entityKeys, type RedisClient, runScript } from "@coordis/core";
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
/** Most rounds of {@link ProfileStore.settleName}: as many renames of one player racing one request. */
const SETTLE_ROUNDS = 8;

/** A script of the profile hash (its one key), defined by hand: the demo has no generated scripts of its own. */
const profileScript = <A extends readonly string[], R>(name: string, args: A, source: string) =>
  defineScript<["profile"], A, R>({
    name: `demo/${name}`,
    keys: ["profile"],
    args,
    source,
    sha1: createHash("sha1").update(source).digest("hex"),
  });

/**
 * Counts a submission: sets the name (HSET, or HSETNX of the id when the submission has none) and, on a new profile,
 * the creation time (HSETNX), adds to the counters, and replies with the name and creation time stored now, the
 * submission's number and whether the name was set. One script: nothing (a delete included) runs between its steps,
 * so a profile is never left with counters but no name or creation time.
 */
const RECORD = profileScript<["name", "id", "score", "now"], [string, string, number, number]>(
  "profile-record",
  ["name", "id", "score", "now"],
  `local set
if ARGV[1] == "" then set = redis.call("HSETNX", KEYS[1], "name", ARGV[2])
else set = redis.call("HSET", KEYS[1], "name", ARGV[1]) end
redis.call("HSETNX", KEYS[1], "createdAt", ARGV[4])
local n = redis.call("HINCRBY", KEYS[1], "submissions", 1)
redis.call("HINCRBY", KEYS[1], "total", ARGV[3])
redis.call("HSET", KEYS[1], "updatedAt", ARGV[4])
local stored = redis.call("HMGET", KEYS[1], "name", "createdAt")
return {stored[1], stored[2], n, set}`,
);

/**
 * Renames a player whose profile exists (it has a name): 1, or 0 and nothing written. One script, so a delete can
 * never run between the check and the write and leave a profile of a name alone.
 */
const RENAME = profileScript<["name", "now"], number>(
  "profile-rename",
  ["name", "now"],
  `if redis.call("HEXISTS", KEYS[1], "name") == 0 then return 0 end
redis.call("HSET", KEYS[1], "name", ARGV[1], "updatedAt", ARGV[2])
return 1`,
);

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
   * Counts a submission of `score` (creating the profile on first use) and returns the player's name as stored now,
   * the submission's number (1 for the first one), when the profile was created, and whether this call set the name
   * (`named`: it carried one, or it created the profile with the id as name). One script ({@link RECORD}): a new
   * profile's name and creation time are set with HSETNX before anything reads them, so concurrent first submissions
   * agree on both, and one without a name never replaces the name another one carried.
   */
  async recordSubmission(
    id: string,
    name: string | undefined,
    score: number,
  ): Promise<{ name: string; submission: number; createdAt: number; named: boolean }> {
    const now = Date.now();
    const [storedName, createdAt, submission, setName] = await runScript(
      this.#redis,
      RECORD,
      [this.#key(id)],
      [name ?? "", id, score, now],
    );
    return { name: storedName, submission, createdAt: Number(createdAt), named: name !== undefined || setName === 1 };
  }

  /**
   * Whether the profile of `id` is still the one created at `createdAt` (as {@link recordSubmission} returned it):
   * false once it was deleted since, whether or not the player was created again.
   */
  async unchanged(id: string, createdAt: number): Promise<boolean> {
    const [stored] = await this.#redis.hmget(this.#key(id), "createdAt");
    return stored !== null && stored !== undefined && Number(stored) === createdAt;
  }

  /**
   * Makes a copy of a player's name (the leaderboards' metadata) agree with the profile. Call it after every write of
   * the name to the profile, once `written` was stored in the copy: while the profile holds another name (a concurrent
   * request renamed the player in between), `write` stores that one and the profile is read again. Whichever request
   * writes the copy last has then read the profile after its last rename, so the two end equal. Returns the name the
   * copy holds.
   */
  async settleName(id: string, written: string, write: (name: string) => Promise<unknown>): Promise<string> {
    let shown = written;
    // Each further round means the profile was renamed again meanwhile; the bound only guards against a rename storm.
    for (let round = 0; round < SETTLE_ROUNDS; round++) {
      const [stored] = await this.#redis.hmget(this.#key(id), "name");
      if (stored === null || stored === undefined || stored === shown) return shown;
      shown = stored;
      await write(shown);
    }
    return shown;
  }

  /** Renames an existing player, in one script ({@link RENAME}); false when unknown (and nothing was written). */
  async rename(id: string, name: string): Promise<boolean> {
    return (await runScript(this.#redis, RENAME, [this.#key(id)], [name, Date.now()])) === 1;
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
