import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { API_SECURITY } from "../openapi.js";
import { ApiKeyHeaders, AuditQuery } from "../schemas.js";
import type { Demo } from "../services.js";

/**
 * The audit log (public API, rate limited): newest first, paged by cursor. Its live tail is a stream (streams.ts)
 * and checking its hash chain an admin route (admin.ts).
 */
export const auditRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { audit, limits } = demo;

  app.get(
    "/v1/audit",
    {
      config: limits.api,
      schema: {
        tags: ["audit"],
        summary: "The audit log, newest first, paged by cursor",
        querystring: AuditQuery,
        headers: ApiKeyHeaders,
        security: API_SECURITY,
      },
    },
    async (req) => {
      // An entry that fails the chain's check (changed, or one before it deleted) is listed, flagged
      // (`verified: false`, `unverifiedReason`): this is where tampering shows, not a 500 for every page holding it.
      const page = await audit.read({
        unverified: "mark",
        reverse: true,
        limit: req.query.limit ?? 20,
        ...(req.query.cursor === undefined ? {} : { before: req.query.cursor }),
      });
      return { entries: page.entries, ...(page.next === undefined ? {} : { next: page.next }) };
    },
  );
};
