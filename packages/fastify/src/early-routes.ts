import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { HOOKS } from "./options.js";
import { problem } from "./problem.js";
import type { RateLimitCheck } from "./request-hook.js";
import { type RouteLimit, routeId } from "./route-limit.js";

/** Set in the config of every route the plugin's onRoute hook saw (limited there, or without a limit). */
export const WIRED: unique symbol = Symbol("coordis.fastify.wired");

/**
 * Limits the routes declared before the plugin loaded (an un-awaited `register`), which never reach its onRoute
 * hook. Fastify builds every route's hook list at ready time from its instance's hooks, and addHook reaches existing
 * child instances, so instance-level guard hooks reach those routes: they resolve the route's limit on its first
 * request (`resolve` throws for a misconfigured one, answered 500) and skip routes whose config carries WIRED (seen
 * by onRoute). Fastify does not tell a request's route constraints: an early route's budget is named by its method and
 * URL alone.
 */
export function guardEarlyRoutes(
  fastify: FastifyInstance,
  resolve: (method: string | string[], url: string, config: unknown) => RouteLimit | undefined,
  check: RateLimitCheck,
): void {
  if (fastify.printRoutes() === "(empty tree)") return;
  // Per route (its context's config object), resolved once: null for routes without a limit or already wired.
  const lazy = new WeakMap<object, RouteLimit | null | Error>();
  const lazyLimit = (request: FastifyRequest): RouteLimit | null | Error => {
    const ro = request.routeOptions;
    // The not-found handler's requests pass these hooks too, without a route: no route, no route limit.
    if (ro.url === undefined || request.is404) return null;
    const config = ro.config as object;
    let limit = lazy.get(config);
    if (limit === undefined) {
      try {
        limit = WIRED in config ? null : (resolve(ro.method, ro.url ?? "", config) ?? null);
      } catch (err) {
        limit = err as Error;
      }
      lazy.set(config, limit);
    }
    return limit;
  };
  for (const phase of HOOKS) {
    const guard = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
      const limit = lazyLimit(request);
      if (limit === null) return done();
      if (limit instanceof Error) {
        if (phase !== "onRequest") return done();
        request.log.error(limit);
        const ro = request.routeOptions;
        problem(
          reply,
          500,
          "Internal Server Error",
          `The rate limit of route ${routeId(ro.method, ro.url ?? "")} is misconfigured.`,
        );
        return;
      }
      if (limit.hook !== phase) return done();
      check(limit, request, reply, done);
    };
    if (phase === "preParsing") {
      fastify.addHook(phase, (request, reply, payload, done) =>
        guard(request, reply, (err) => done(err ?? null, payload)),
      );
    } else {
      fastify.addHook(phase, guard);
    }
  }
}
