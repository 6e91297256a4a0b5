import { InvalidArgumentError, validate } from "@coordis/core";
import type { Decision, RuleDecision } from "./decision.js";
import { type NormalizedRule, normalizeRules, type Rule } from "./rules.js";

/** The header fields {@link toHeaders} returns. `Retry-After` only when the decision rejected the call. */
export interface RateLimitHeaders {
  "RateLimit-Policy": string;
  RateLimit: string;
  "Retry-After"?: string;
}

const seconds = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/**
 * Renders a decision as the structured header fields of draft-ietf-httpapi-ratelimit-headers-11:
 * - `RateLimit-Policy`: every rule as `"<name>";q=<limit>;w=<window in seconds, rounded up>`, comma-separated;
 * - `RateLimit`: the most constraining rule (`decision.rule`) as `"<name>";r=<remaining>;t=<seconds>`, where `t` is
 *   the time until that rule is full again, or the `Retry-After` value when the call was rejected (the draft asks
 *   both to name the same instant);
 * - `Retry-After`: seconds (rounded up, at least 1) when rejected.
 *
 * @example
 * toHeaders(decision, limiter.rules)
 * // { "RateLimit-Policy": '"burst";q=10;w=1, "daily";q=1000;w=86400', RateLimit: '"burst";r=3;t=1' }
 * @param rules the limiter's rules (`limiter.rules`, or the same `Rule[]` it was given)
 * @throws InvalidArgumentError when a field written is not what a Decision holds (a NaN, a string, a negative count),
 *   naming it, or when `decision.rule` is not one of `rules` (a decision of another limiter)
 */
export function toHeaders(decision: Decision, rules: readonly (Rule | NormalizedRule)[]): RateLimitHeaders {
  validateDecision(decision);
  const normalized = normalizeRules(rules, "rules");
  if (!normalized.some((r) => r.name === decision.rule)) {
    throw new InvalidArgumentError(
      "decision.rule",
      "must be the name of one of the rules (a decision of that limiter)",
    );
  }
  const policy = normalized.map((r) => `"${r.name}";q=${r.limit};w=${seconds(r.windowMs)}`).join(", ");
  const at = decision.rules.findIndex((r) => r?.name === decision.rule);
  const top = at < 0 ? undefined : (decision.rules[at] as RuleDecision);
  if (top !== undefined) {
    // the deciding rule's own fields are the ones written: checked as the top-level ones are
    validate.integer(`decision.rules[${at}].remaining`, top.remaining, { min: 0 });
    validate.finiteNumber(`decision.rules[${at}].resetMs`, top.resetMs, { min: 0 });
  }
  const remaining = top?.remaining ?? decision.remaining;
  const headers: RateLimitHeaders = {
    "RateLimit-Policy": policy,
    RateLimit: "",
  };
  if (decision.allowed) {
    headers.RateLimit = `"${decision.rule}";r=${remaining};t=${seconds(top?.resetMs ?? decision.resetMs)}`;
  } else {
    const retry = Math.max(1, seconds(decision.retryAfterMs));
    headers.RateLimit = `"${decision.rule}";r=${remaining};t=${retry}`;
    headers["Retry-After"] = String(retry);
  }
  return headers;
}

/** Checks the fields of a Decision that the headers are built from. @throws InvalidArgumentError */
function validateDecision(decision: unknown): asserts decision is Decision {
  const d = validate.options<Decision>("decision", decision);
  if (decision === undefined)
    throw new InvalidArgumentError("decision", "expected a Decision from consume() or peek()");
  validate.boolean("decision.allowed", d.allowed);
  validate.string("decision.rule", d.rule, { maxBytes: 256 });
  validate.integer("decision.remaining", d.remaining, { min: 0 });
  validate.finiteNumber("decision.resetMs", d.resetMs, { min: 0 });
  validate.finiteNumber("decision.retryAfterMs", d.retryAfterMs, { min: 0 });
  if (!Array.isArray(d.rules)) throw new InvalidArgumentError("decision.rules", "expected the array of rule decisions");
}
