import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { BUCKET_MS } from "../activity.js";
import type { Demo } from "../services.js";
import { STATS_QUEUE } from "../stats.js";

/** Dead letters the queue panel lists (newest first). */
const DEAD_SHOWN = 20;

/**
 * The stats queue as the dashboard shows it (on the per-address dashboard budget): its depth and dead letters at
 * `/v1/queue`, and the charts' series (rate-limit decisions, jobs and depth per 5-second interval over 5 minutes,
 * fleet-wide) at `/v1/activity`. Retrying a dead letter is an admin route.
 */
export const queueRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { queue, activity, replica } = demo;

  app.get(
    "/v1/queue",
    {
      config: demo.limits.dashboard,
      schema: { tags: ["dashboard"], summary: "The stats queue: depth, completed per minute, newest dead letters" },
    },
    async () => {
      const [counts, dead, series] = await Promise.all([
        queue.counts(),
        queue.deadLetters({ limit: 100 }),
        activity.read(),
      ]);
      // The last full minute of intervals (the current one is partial).
      const perMinute = 60_000 / BUCKET_MS;
      const done = series.counters.completed.slice(-perMinute - 1, -1).reduce((a, b) => a + b, 0);
      return {
        queue: STATS_QUEUE,
        counts,
        completedPerMinute: done,
        deadLetters: dead.jobs
          .slice(-DEAD_SHOWN)
          .reverse()
          .map((j) => ({
            id: j.id,
            playerId: j.data.playerId,
            diedAt: j.diedAt,
            attempts: j.attempts,
            error: j.error,
          })),
        replica,
      };
    },
  );

  app.get(
    "/v1/activity",
    {
      config: demo.limits.dashboard,
      schema: {
        tags: ["dashboard"],
        summary: "Chart series, fleet-wide: rate-limit decisions, stats jobs and queue depth per 5 s over 5 minutes",
      },
    },
    async () => activity.read(),
  );
};
