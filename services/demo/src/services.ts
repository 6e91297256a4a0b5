import { EventLog } from "@coordis/eventlog";
import type { CoordisDecorator } from "@coordis/fastify";
import { Leaderboard, type LeaderboardOptions } from "@coordis/leaderboard";
import { PubSub } from "@coordis/pubsub";
import type { ApiKeys } from "./apikeys.js";
import type { DemoConfig } from "./config.js";
import type { RateLimits } from "./limits.js";
import type { AuditEvent, DemoMessage, PlayerMeta } from "./model.js";
import { ProfileStore } from "./profiles.js";

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
  return {
    config,
    replica: config.replicaId,
    limits,
    keys,
    board,
    audit,
    pubsub,
    profiles,
    publish: (message) => pubsub.publish(CHANNEL, message),
  };
}
