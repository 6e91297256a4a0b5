import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { problem } from "../problem.js";
import type { Demo } from "../services.js";

/** Liveness (`/healthz`: the process is up) and readiness (`/readyz`: Redis answers within 1 s). Not rate limited. */
export const probeRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { replica } = demo;
  const { redis } = app.coordis;

  app.get("/healthz", { schema: { tags: ["probes"], summary: "The process is up" } }, async () => ({
    status: "ok",
    replica,
  }));
  app.get("/readyz", { schema: { tags: ["probes"], summary: "Redis answers within 1 s" } }, async (_req, reply) => {
    try {
      const pong = await Promise.race([redis.ping(), sleep(1_000).then(() => "timeout")]);
      if (pong === "PONG") return { status: "ready", replica };
    } catch {
      // fall through
    }
    return problem(reply, 503, "Service Unavailable", "Redis is not reachable");
  });
};
