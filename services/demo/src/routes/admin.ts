import { createHash, timingSafeEqual } from "node:crypto";
import { rateLimitKey } from "@coordis/fastify";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { ADMIN_SECURITY } from "../openapi.js";
import { problem } from "../problem.js";
import { IssueKeysBody, JobParams, KeyParams, PlayerParams } from "../schemas.js";
import type { Demo } from "../services.js";

/**
 * A delete racing submissions goes round at most this often: each further round means a submission re-created the
 * player, so the bound only stops a storm of them. A delete that gave up early (4 rounds) could leave a re-created
 * profile whose board entry it had just removed.
 */
const DELETE_ROUNDS = 32;

/**
 * Admin endpoints: every route of this plugin requires `Authorization: Bearer $ADMIN_TOKEN` (compared in constant
 * time; without `ADMIN_TOKEN` every call is a 401), is limited to 60 per minute per address, and is audited.
 */
export const adminRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { config, replica, board, audit, profiles, stats, keys, limits, queue } = demo;

  // Hashes of equal length, so the comparison takes the same time whatever was sent.
  const expected =
    config.adminToken === undefined ? undefined : createHash("sha256").update(config.adminToken).digest();
  // Before the body is read (preParsing: after every onRequest hook, the route's rate limit included, so guesses
  // spend the address' budget; before the media type, size and JSON checks and validation): a caller without the
  // token gets the same 401 whatever it sends, learns nothing about what the bodies should hold, and has no body
  // parsed for it.
  app.addHook("preParsing", async (request, reply) => {
    // The scheme in any case, then one or more spaces (RFC 9110 §11.1, RFC 6750 §2.1).
    const match = /^bearer +(.+)$/i.exec(request.headers.authorization ?? "");
    const given = createHash("sha256")
      .update(match?.[1] ?? "")
      .digest();
    const ok = expected !== undefined && match !== null && timingSafeEqual(given, expected);
    if (!ok) {
      return problem(
        reply,
        401,
        "Unauthorized",
        expected === undefined
          ? "Admin endpoints are disabled: ADMIN_TOKEN is not set."
          : "A valid admin bearer token is required.",
        { "www-authenticate": 'Bearer realm="coordis-demo"' },
      );
    }
  });

  app.delete(
    "/v1/players/:id",
    {
      config: limits.admin,
      schema: {
        tags: ["admin"],
        summary: "Delete a player everywhere",
        params: PlayerParams,
        security: ADMIN_SECURITY,
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      // The profile first, then the boards, and again while the profile is back: a score submitted meanwhile
      // created the player anew after the profile's delete, and its board write may have come before this removal
      // (a player with a profile and no board entry). A submission that reads its profile unchanged after its board
      // write (routes/scores.ts) is whole; one that does not counts itself again. Either way a delete racing a
      // score leaves the player deleted everywhere or whole.
      let removed = false;
      let existed = false;
      for (let round = 1; ; round++) {
        existed = (await profiles.remove(id)) || existed;
        removed = (await board.remove(id)) || removed;
        if (round === DELETE_ROUNDS || (await profiles.read(id)) === null) break;
      }
      await stats.remove(id);
      if (!removed && !existed) return problem(reply, 404, "Not Found", `No player ${id}`);
      await audit.append({ type: "player-deleted", playerId: id, replica, by: "admin" });
      await profiles.invalidate(id);
      await demo.publish({ type: "player", replica, playerId: id, action: "deleted" });
      return reply.code(204).send();
    },
  );
  app.post(
    "/v1/admin/ratelimit/:key/reset",
    {
      config: limits.admin,
      schema: {
        tags: ["admin"],
        summary: "Refill an API key's budget (by key id)",
        params: KeyParams,
        security: ADMIN_SECURITY,
      },
    },
    async (req, reply) => {
      await app.coordis.rateLimiter(limits.apiRules).reset(rateLimitKey("api", `key:${req.params.key}`));
      await audit.append({ type: "ratelimit-reset", key: req.params.key, replica, by: "admin" });
      return reply.code(204).send();
    },
  );
  app.post(
    "/v1/admin/keys",
    {
      config: limits.admin,
      schema: {
        tags: ["admin"],
        summary: "Issue API keys (`<id>.<signature>`; the id names the key's budget)",
        body: IssueKeysBody,
        security: ADMIN_SECURITY,
      },
      // The body is optional (one key): no body reads as {}.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req, reply) => {
      const issued = Array.from({ length: req.body?.count ?? 1 }, () => {
        const key = keys.issue();
        return { id: key.slice(0, key.indexOf(".")), key };
      });
      await audit.append({ type: "api-key-issued", ids: issued.map((k) => k.id), replica, by: "admin" });
      return reply.code(201).send({ keys: issued });
    },
  );
  app.post(
    "/v1/admin/queue/dead/:id/retry",
    {
      config: limits.admin,
      schema: {
        tags: ["admin"],
        summary: "Move a dead stats job back to the queue with a fresh set of attempts",
        params: JobParams,
        security: ADMIN_SECURITY,
      },
    },
    async (req, reply) => {
      if (!(await queue.retryDead(req.params.id))) {
        return problem(reply, 404, "Not Found", `No dead letter ${req.params.id}`);
      }
      await audit.append({ type: "job-retried", jobId: req.params.id, replica, by: "admin" });
      return reply.code(204).send();
    },
  );
  app.get(
    "/v1/audit/verify",
    {
      config: limits.admin,
      schema: { tags: ["admin"], summary: "Check the audit log's hash chain", security: ADMIN_SECURITY },
    },
    async () => audit.verify(),
  );
};
