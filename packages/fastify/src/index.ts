/**
 * @coordis/fastify — a Fastify plugin for Coordis: the primitives' shared connection and observer as
 * `fastify.coordis`, per-route rate limits with the IETF draft-11 `RateLimit` / `RateLimit-Policy` headers and
 * `application/problem+json` 429 answers, and an optional Prometheus `/metrics` route.
 * @packageDocumentation
 */
export {
  type CoordisDecorator,
  type CoordisPluginOptions,
  type CoordisRouteConfig,
  coordis,
  type ProblemDetails,
  type RateLimitDefaults,
  type RateLimitExceededContext,
  type RateLimitHeaderOptions,
  type RateLimitHook,
  type RateLimitKeyFn,
  type RateLimitRulesFn,
  type RateLimitSettings,
  type RouteRateLimit,
} from "./plugin.js";
export { rateLimitKey, routeGroup } from "./rate-limit-key.js";
