/**
 * @coordis/fastify — a Fastify plugin for Coordis: the primitives' shared connection and observer as
 * `fastify.coordis`, per-route rate limits with the IETF draft-11 `RateLimit` / `RateLimit-Policy` headers and
 * `application/problem+json` 429 answers, and an optional Prometheus `/metrics` route.
 * @packageDocumentation
 */
export { addressKey } from "./address-key.js";
export type { CoordisDecorator, RateLimitHookHandler } from "./decorator.js";
export type {
  CoordisPluginOptions,
  CoordisRouteConfig,
  RateLimitDefaults,
  RateLimitExceededContext,
  RateLimitHeaderOptions,
  RateLimitHook,
  RateLimitKeyFn,
  RateLimitRulesFn,
  RateLimitSettings,
  RouteRateLimit,
} from "./options.js";
export { coordis } from "./plugin.js";
export type { ProblemDetails } from "./problem.js";
export { banKey, rateLimitKey, routeGroup } from "./rate-limit-key.js";
