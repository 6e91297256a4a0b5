import { entityKeys } from "@coordis/core";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { type JobSpec, recentRuns, scheduleJobs } from "../jobs.js";
import { toEntry } from "../model.js";
import type { Demo } from "../services.js";

/** Options of {@link jobRoutes}. */
export interface JobsOptions {
  demo: Demo;
  /** Schedule the jobs on this replica (the history route is served either way). */
  schedule: boolean;
}

/**
 * Cron jobs: every replica schedules `snapshot-top10` and `rollup-stats`, and `runOncePerTick` lets one replica run
 * each tick, fleet-wide. Each run is audited (idempotently per tick) and announced on the event stream;
 * `GET /v1/jobs` shows the recent runs and the replica of each.
 */
export const jobRoutes: FastifyPluginAsyncTypebox<JobsOptions> = async (app, { demo, schedule }) => {
  const { config, replica, board, audit } = demo;
  const { redis } = app.coordis;

  const jobs: JobSpec[] = [
    {
      name: "snapshot-top10",
      everyMs: config.snapshotEveryMs,
      run: async (ctx) => {
        const top = (await board.top(10, { period: "all" })).map(toEntry);
        await redis.set(entityKeys(config.prefix, "snapshot", "top10").base, JSON.stringify({ at: ctx.tick, top }));
        await audit.append(
          {
            type: "job-run",
            job: ctx.job,
            tick: ctx.tick,
            fence: ctx.fence,
            replica,
            summary: { entries: top.length },
          },
          { idempotencyKey: `job:${ctx.job}:${ctx.tick}` },
        );
        await demo.publish({ type: "job", replica, job: ctx.job, tick: ctx.tick, at: Date.now() });
      },
    },
    {
      name: "rollup-stats",
      everyMs: config.rollupEveryMs,
      run: async (ctx) => {
        const [all, daily] = await Promise.all([board.count({ period: "all" }), board.count({ period: "daily" })]);
        await audit.append(
          {
            type: "job-run",
            job: ctx.job,
            tick: ctx.tick,
            fence: ctx.fence,
            replica,
            summary: { players: all, today: daily },
          },
          { idempotencyKey: `job:${ctx.job}:${ctx.tick}` },
        );
        await demo.publish({ type: "job", replica, job: ctx.job, tick: ctx.tick, at: Date.now() });
      },
    },
  ];
  if (schedule) {
    const stopJobs = scheduleJobs(redis, jobs, {
      owner: replica,
      prefix: config.prefix,
      observer: app.coordis.observer,
      onError: (job, err) => app.log.warn({ err, job }, "job failed"),
    });
    app.addHook("preClose", async () => {
      stopJobs();
    });
  }

  app.get(
    "/v1/jobs",
    {
      config: demo.limits.dashboard,
      schema: { tags: ["dashboard"], summary: "Recent cron job runs and the replica of each" },
    },
    async () => ({
      runs: await recentRuns(redis, config.prefix, 50),
    }),
  );
};
