import { EventLog } from "@coordis/eventlog";
import type { CoordisDecorator } from "@coordis/fastify";
import { Leaderboard, type LeaderboardOptions } from "@coordis/leaderboard";
import { PubSub } from "@coordis/pubsub";
import { Queue, type QueueOptions, Worker, type WorkerOptions } from "@coordis/queue";
import type { Activity } from "./activity.js";
import type { ApiKeys } from "./apikeys.js";
import type { DemoConfig } from "./config.js";
import type { RateLimits } from "./limits.js";
import type { AuditEvent, DemoMessage, PlayerMeta } from "./model.js";
import { ProfileStore } from "./profiles.js";
import { STATS_QUEUE, type StatsJobData, type StatsJobResult, StatsStore, statsHandler } from "./stats.js";

/** The pub/sub channel every replica publishes {@link DemoMessage}s on. */
export const CHANNEL = "events";

/** What every area of a replica shares: its configuration and the Coordis primitives, created once. */
export interface Demo {
  readonly config: DemoConfig;
  /** This replica's id (`REPLICA_ID`). */
  readonly replica: string;
  readonly limits: RateLimits;
  readonly keys: ApiKeys;
  /** Daily and all-time leaderboards. */
  readonly board: Leaderboard<PlayerMeta>;
  /** The hash-chained audit log. */
  readonly audit: EventLog<AuditEvent>;
  readonly pubsub: PubSub;
  readonly profiles: ProfileStore;
  /** Player stats, written fenced by the stats jobs. */
  readonly stats: StatsStore;
  /** The stats queue: one job per accepted score. */
  readonly queue: Queue<StatsJobData, StatsJobResult>;
  /** This replica's worker of the stats queue. */
  readonly worker: Worker<StatsJobData, StatsJobResult>;
  /** The dashboard's charts (fleet-wide counts per interval). */
  readonly activity: Activity;
  /** Publishes `message` to every replica (their `/v1/events` streams). */
  publish(message: DemoMessage): Promise<number>;
}

/**
 * Creates the replica's primitives on the Fastify plugin's connection; they close with it (the plugin's `onClose`
 * runs what is registered later first, so areas that use them stop before they close).
 */
export async function createDemo(
  coordis: CoordisDecorator,
  config: DemoConfig,
  limits: RateLimits,
  keys: ApiKeys,
  activity: Activity,
): Promise<Demo> {
  const { redis } = coordis;
  const board = new Leaderboard<PlayerMeta>(
    redis,
    "scores",
    coordis.options<LeaderboardOptions>({ periods: ["daily", "all"] }),
  );
  const audit = new EventLog<AuditEvent>(redis, "audit", coordis.options({ chain: true, maxLen: 10_000 }));
  const pubsub = new PubSub(redis, coordis.options());
  const profiles = await ProfileStore.create(coordis, config);
  coordis.onClose(async () => {
    await pubsub.close();
    await profiles.close();
  });

  // Registered after the hook above, so it runs first: the worker stops before the stores its jobs write to.
  const stats = new StatsStore(redis, config.prefix);
  const shared = { retention: { completed: 1_000, dead: 100 } };
  const queue = new Queue<StatsJobData, StatsJobResult>(
    redis,
    STATS_QUEUE,
    coordis.options<QueueOptions<StatsJobData, StatsJobResult>>({
      ...shared,
      defaults: { attempts: 3, backoff: { type: "exponential", delayMs: 500 }, resultTtlMs: 10 * 60_000 },
    }),
  );
  const worker = new Worker<StatsJobData, StatsJobResult>(
    redis,
    STATS_QUEUE,
    statsHandler({ profiles, board, stats, replica: config.replicaId }),
    coordis.options<WorkerOptions<StatsJobData, StatsJobResult>>({
      ...shared,
      concurrency: 8,
      leaseMs: 10_000,
      schedules: false,
    }),
  );
  activity.start(redis, config.prefix, () => queue.counts());
  coordis.onClose(async () => {
    await worker.close({ timeoutMs: 2_000 });
    await Promise.all([queue.close(), activity.close()]);
  });
  return {
    config,
    replica: config.replicaId,
    limits,
    keys,
    board,
    audit,
    pubsub,
    profiles,
    stats,
    queue,
    worker,
    activity,
    publish: (message) => pubsub.publish(CHANNEL, message),
  };
}
