import { entityKeys, type RedisClient } from "@coordis/core";
import type { Leaderboard } from "@coordis/leaderboard";
import type { Job } from "@coordis/queue";
import type { PlayerMeta, PlayerStats } from "./model.js";
import type { ProfileStore } from "./profiles.js";

export type { PlayerStats } from "./model.js";

/** The queue every accepted score fans out to; a Worker in every replica runs its jobs. */
export const STATS_QUEUE = "player-stats";

/**
 * A player named this (any case) makes the stats job fail on every attempt, so the job ends in the dead letters:
 * the demo's way to show them. Rename the player, then retry the dead letter (admin), and it completes.
 */
export const POISON_NAME = "poison";

/** A stats job's data. */
export interface StatsJobData {
  playerId: string;
}

/** A stats job's result. */
export interface StatsJobResult {
  /** Whether this delivery's stats were stored; false when a delivery with a higher fence stored its own first. */
  applied: boolean;
  fence: number;
  reason?: "superseded" | "no-player";
}

/** The id of the stats job of a player's `submission`-th score (the same submission always gives the same id). */
export function statsJobId(playerId: string, createdAt: number, submission: number): string {
  return `stats:${playerId}:${createdAt}:${submission}`;
}

/**
 * Player stats, stored fenced: a sorted set `<prefix>:player:{<id>}:stats` scored by the fence of the delivery that
 * computed each value; readers take the highest. A write lands only if no higher fence is stored already: a worker
 * paused past its lease (or a slow delivery of an older job) can add its stale value, but it is removed again and
 * never becomes what readers see. Plain ZADD / ZREVRANGE / ZREM / ZREMRANGEBYSCORE, all granted to the
 * least-privilege user; no Lua and no MULTI.
 */
export class StatsStore {
  readonly #redis: RedisClient;
  readonly #prefix: string;

  constructor(redis: RedisClient, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  #key(id: string): string {
    return entityKeys(this.#prefix, "player", id).sub("stats");
  }

  /**
   * Stores `stats` computed under `fence`.
   * @returns true when they are now what readers see; false when stats of a higher fence were stored first (this
   *   write was withdrawn)
   */
  async write(id: string, stats: PlayerStats, fence: number): Promise<boolean> {
    const key = this.#key(id);
    const member = JSON.stringify({ ...stats, fence });
    const replies = await this.#redis.pipeline().zadd(key, fence, member).zrevrange(key, 0, 0, "WITHSCORES").exec();
    const top = replies?.[1]?.[1] as string[] | undefined;
    if (replies === null || replies.some(([err]) => err !== null) || top === undefined) {
      throw new Error("the stats write got no reply from Redis");
    }
    if (Number(top[1]) > fence) {
      await this.#redis.zrem(key, member);
      return false;
    }
    await this.#redis.zremrangebyscore(key, "-inf", `(${fence}`);
    return true;
  }

  /** Takes back what {@link write} stored for `stats` under `fence` (and only that), when it is still there. */
  async withdraw(id: string, stats: PlayerStats, fence: number): Promise<void> {
    await this.#redis.zrem(this.#key(id), JSON.stringify({ ...stats, fence }));
  }

  /** The stats with the highest fence, or null. */
  async read(id: string): Promise<PlayerStats | null> {
    const [top] = await this.#redis.zrevrange(this.#key(id), 0, 0);
    return top === undefined ? null : (JSON.parse(top) as PlayerStats);
  }

  /** Deletes a player's stats. */
  async remove(id: string): Promise<void> {
    await this.#redis.del(this.#key(id));
  }
}

/**
 * The stats job's handler: recomputes a player's stats from the stored profile (submission count and total) and the
 * all-time board (best), then stores them fenced by `job.fence`. Fences grow with every delivery of the queue's
 * partition, so whichever delivery started last (it read the newest submissions) wins, whatever order the writes
 * arrive in.
 */
export function statsHandler(deps: {
  profiles: ProfileStore;
  board: Leaderboard<PlayerMeta>;
  stats: StatsStore;
  replica: string;
}): (job: Job<StatsJobData>) => Promise<StatsJobResult> {
  return async (job) => {
    const { playerId } = job.data;
    const profile = await deps.profiles.read(playerId);
    if (profile === null) return { applied: false, fence: job.fence, reason: "no-player" };
    if (profile.name.toLowerCase() === POISON_NAME) {
      throw new Error(`no stats for a player named "${profile.name}" (rename the player, then retry the job)`);
    }
    const standing = await deps.board.rank(playerId, { period: "all" });
    const submissions = Math.max(1, profile.submissions);
    const stats: PlayerStats = {
      submissions: profile.submissions,
      best: standing?.score ?? null,
      average: Math.round((profile.total / submissions) * 100) / 100,
      fence: job.fence,
      computedBy: deps.replica,
      computedAt: Date.now(),
    };
    job.signal.throwIfAborted();
    const applied = await deps.stats.write(playerId, stats, job.fence);
    // A delete (admin) may have run since the read above, its removal of the stats before this write: take the write
    // back when the player is gone. Only this write's own value goes; a newer player of the same id has its own job.
    if (applied && (await deps.profiles.read(playerId)) === null) {
      await deps.stats.withdraw(playerId, stats, job.fence);
      return { applied: false, fence: job.fence, reason: "no-player" };
    }
    if (applied) await deps.profiles.invalidate(playerId);
    return applied ? { applied, fence: job.fence } : { applied, fence: job.fence, reason: "superseded" };
  };
}
