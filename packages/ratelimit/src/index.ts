/**
 * @coordis/ratelimit — rate limiting on Redis: fixed window, sliding window, token bucket and GCRA rules checked
 * atomically together in one round trip on Redis server time, a Stripe-style concurrency limiter, failure
 * policies and the draft-ietf-httpapi-ratelimit-headers fields.
 * @packageDocumentation
 */
export { ConcurrencyLimiter, type Permit } from "./concurrency-limiter.js";
export type { Decision, DecisionReason, RuleDecision } from "./decision.js";
export { type RateLimitHeaders, toHeaders } from "./headers.js";
export type { ConcurrencyLimiterOptions, RateLimiterOptions, RedisErrorPolicy } from "./options.js";
export { RateLimiter } from "./rate-limiter.js";
export { ALGORITHMS, type Algorithm, MAX_LIMIT, type NormalizedRule, type Rule } from "./rules.js";
export { ratelimitScripts } from "./scripts.generated.js";
