import { InvalidArgumentError, isThenable, RedisUnavailableError, validate } from "@coordis/core";
import type { Decision } from "@coordis/ratelimit";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Limiters, RuleSetLimiter } from "./limiters.js";
import { problem } from "./problem.js";
import { banCounterKey, budgetKey } from "./rate-limit-key.js";
import type { RouteLimit } from "./route-limit.js";

/**
 * `Retry-After` of a 503 (Redis unavailable), s: a hint to wait a moment, since Redis outages are mostly short (a
 * reconnect, a failover); every request asks Redis again, so a client may come back sooner and be served.
 */
const UNAVAILABLE_RETRY_AFTER_S = 1;

/** The budget fields the limits set (both sets), none of which a 403 carries. */
const BUDGET_HEADERS = [
  "RateLimit",
  "RateLimit-Policy",
  "x-ratelimit-limit",
  "x-ratelimit-remaining",
  "x-ratelimit-reset",
];

/** Continues a request (`next()`) or fails it (`next(err)`). */
export type Next = (err?: Error) => void;

/**
 * Runs a route's limit and calls `next()` to let the request go on, `next(err)` on an error, or nothing when it
 * answered the request itself (429, 403, 500 or 503).
 */
export type RateLimitCheck = (limit: RouteLimit, request: FastifyRequest, reply: FastifyReply, next: Next) => void;

/** Whether a ban limiter's decision is a ban: rejected by Redis (or its deny cache), not by a failure policy. */
function isBan(d: Decision): boolean {
  return !d.allowed && (d.reason === "redis" || d.reason === "deny-cache");
}

/**
 * Calls the route's `onExceeding` / `onExceeded`. A synchronous throw is thrown (the request fails with it); a promise
 * the callback returns (an async callback) is not waited for, as @fastify/rate-limit does not, and its rejection is
 * logged: left unhandled, it would end the process.
 */
function notify(limit: RouteLimit, which: "onExceeding" | "onExceeded", request: FastifyRequest, key: string): void {
  const callback = limit[which];
  if (callback === undefined) return;
  const result: unknown = callback(request, key);
  if (isThenable(result)) {
    (result as PromiseLike<unknown>).then(undefined, (err: unknown) => {
      request.log.error({ err }, `@coordis/fastify: the ${which} callback of ${limit.id} rejected`);
    });
  }
}

/**
 * Fails the request (`next(err)`) with what a function of the app's (`what`, of `limit`) threw or rejected with. A
 * falsy value (`throw undefined`, `Promise.reject()`) is no error to Fastify: passed on as it is, it would let the
 * request through, unlimited (a rejected one too), so it becomes an InvalidArgumentError naming the function.
 */
function failWith(limit: RouteLimit, what: string, next: Next): (err: unknown) => void {
  return (err) => {
    if (err) next(err as Error);
    else {
      next(
        new InvalidArgumentError(
          what,
          `the ${what} of the rate limit of ${limit.id} threw ${validate.describeValue(err)}; throw an Error`,
        ),
      );
    }
  };
}

function words(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  return s === 1 ? "1 second" : `${s} seconds`;
}

/**
 * The per-request path of route limits over `limiters`: key, allow list, rules, consume, headers, the 429 / 403
 * answer, ban and callbacks. Callback style, so the common path (a string key, static rules) costs one promise, the
 * limiter's.
 */
export function rateLimitCheck(limiters: Limiters): RateLimitCheck {
  const check: RateLimitCheck = (limit, request, reply, next) => {
    let raw: string | Promise<string>;
    try {
      raw = limit.key(request);
    } catch (err) {
      failWith(limit, "key function", next)(err);
      return;
    }
    if (isThenable(raw))
      raw.then((k) => withKey(limit, request, reply, k, next), failWith(limit, "key function", next));
    else withKey(limit, request, reply, raw, next);
  };

  const withKey = (limit: RouteLimit, request: FastifyRequest, reply: FastifyReply, raw: unknown, next: Next) => {
    if (typeof raw !== "string" || raw.length === 0) {
      const what = typeof raw === "string" ? "an empty string" : raw === null ? "null" : typeof raw;
      request.log.error(`@coordis/fastify: the rate-limit key function of ${limit.id} returned ${what}`);
      problem(
        reply,
        500,
        "Internal Server Error",
        `The rate-limit key function of route ${limit.id} returned ${what}; it must return a non-empty string.`,
      );
      return;
    }
    const allow = limit.allow;
    if (allow === null) {
      withRules(limit, request, reply, raw, next);
    } else if (typeof allow !== "function") {
      if (allow.has(raw)) next();
      else withRules(limit, request, reply, raw, next);
    } else {
      Promise.resolve()
        .then(() => allow(request, raw))
        .then(
          (allowed) => (allowed ? next() : withRules(limit, request, reply, raw, next)),
          failWith(limit, "allowList function", next),
        );
    }
  };

  const withRules = (limit: RouteLimit, request: FastifyRequest, reply: FastifyReply, raw: string, next: Next) => {
    const rules = limit.rules;
    if (typeof rules !== "function") {
      consume(limit, rules, request, reply, raw, next);
    } else {
      Promise.resolve()
        .then(() => rules(request, raw))
        .then((r) => limiters.dynamicLimiterOf(limit.id, r))
        .then((pair) => consume(limit, pair, request, reply, raw, next), failWith(limit, "rules function", next));
    }
  };

  const consume = (
    limit: RouteLimit,
    pair: RuleSetLimiter,
    request: FastifyRequest,
    reply: FastifyReply,
    raw: string,
    next: Next,
  ) => {
    if (limit.ban === undefined) {
      consumeRoute(limit, pair, request, reply, raw, next);
      return;
    }
    // A banned key gets 403 until its ban ends, even when the route's rules would admit it again (a shorter rule's
    // window ended): the ban is read first. Only Redis bans: a failure policy's answer is no ban (see isBan).
    const banPair = limiters.banLimiterOf(limit.ban, pair);
    banPair.limiter.peek(banCounterKey(limit.group, raw)).then(
      (state) =>
        isBan(state)
          ? rejected(limit, pair, request, reply, raw, state, state, next)
          : consumeRoute(limit, pair, request, reply, raw, next),
      (err: unknown) => failed(limit, reply, err, next),
    );
  };

  /**
   * A limiter call failed: 503 while Redis is unavailable (the `"throw"` policy), with `Retry-After` (unless the
   * route turned it off). Else `next(err)`.
   */
  const failed = (limit: RouteLimit, reply: FastifyReply, err: unknown, next: Next): void => {
    if (err instanceof RedisUnavailableError) {
      if (limit.retryAfter) reply.header("Retry-After", UNAVAILABLE_RETRY_AFTER_S);
      problem(reply, 503, "Service Unavailable", "The rate limiter cannot reach its store; try again shortly.");
    } else {
      next(err as Error);
    }
  };

  const consumeRoute = (
    limit: RouteLimit,
    pair: RuleSetLimiter,
    request: FastifyRequest,
    reply: FastifyReply,
    raw: string,
    next: Next,
  ) => {
    let pending: Promise<Decision>;
    try {
      let cost = limit.cost;
      const most = pair.maxCost;
      if (typeof cost === "function") {
        const got: unknown = cost(request);
        if (typeof got !== "number" || !Number.isInteger(got) || got < 1 || got > most) {
          // The function's fault, not the client's: answered like a bad key (never a 429 or a free pass).
          // A promise is no cost; its rejection must not become an unhandled one (which ends the process).
          if (isThenable(got)) (got as PromiseLike<unknown>).then(undefined, () => undefined);
          const what =
            typeof got === "number" ? String(got) : got === null ? "null" : isThenable(got) ? "a promise" : typeof got;
          request.log.error(`@coordis/fastify: the rate-limit cost function of ${limit.id} returned ${what}`);
          problem(
            reply,
            500,
            "Internal Server Error",
            `The rate-limit cost function of route ${limit.id} returned ${what}; it must return an integer from 1 to ${most} (the smallest rule capacity).`,
          );
          return;
        }
        cost = got;
      } else if (cost > most) {
        // A fixed cost checked against rules a function picked for this request (fixed rules were checked when the
        // route was declared): the app's settings, answered like a bad cost function.
        request.log.error(`@coordis/fastify: the rate-limit cost ${cost} of ${limit.id} is above the rules' capacity`);
        problem(
          reply,
          500,
          "Internal Server Error",
          `The rate-limit cost of route ${limit.id} is ${cost}, above the smallest capacity (${most}) of the rules its rules function returned.`,
        );
        return;
      }
      pending = limiters.consume(pair, budgetKey(limit.group, raw), cost);
    } catch (err) {
      failWith(limit, "cost function", next)(err);
      return;
    }
    pending.then(
      (decision) => {
        if (decision.allowed) {
          // A request admitted because Redis was unavailable ("fail-open") was not counted: no budget to tell.
          if (limit.onAllowed && decision.reason !== "fail-open") setHeaders(limit, pair, decision, reply);
          try {
            notify(limit, "onExceeding", request, raw);
          } catch (err) {
            failWith(limit, "onExceeding callback", next)(err);
            return;
          }
          next();
        } else if (limit.ban === undefined) {
          rejected(limit, pair, request, reply, raw, decision, undefined, next);
        } else {
          banned(limit, pair, raw).then((ban) => rejected(limit, pair, request, reply, raw, decision, ban, next), next);
        }
      },
      (err: unknown) => failed(limit, reply, err, next),
    );
  };

  /**
   * Counts this rejection towards the key's ban (`limit.ban` set): the ban's decision when the key is banned now,
   * `undefined` when it is not. A failing store bans nobody (a fail-closed or fallback rejection is no ban).
   */
  const banned = async (limit: RouteLimit, pair: RuleSetLimiter, raw: string): Promise<Decision | undefined> => {
    const banPair = limiters.banLimiterOf(limit.ban as number, pair);
    try {
      const d = await limiters.consume(banPair, banCounterKey(limit.group, raw), 1);
      return isBan(d) ? d : undefined;
    } catch (err) {
      if (!(err instanceof RedisUnavailableError)) throw err;
      return undefined;
    }
  };

  /**
   * Answers a rejected request: 429 with the route's headers, or 403 when `ban` (the ban's decision) is given, with
   * `Retry-After` until the ban ends; `next(err)` when a callback of the user's throws.
   */
  const rejected = (
    limit: RouteLimit,
    pair: RuleSetLimiter,
    request: FastifyRequest,
    reply: FastifyReply,
    raw: string,
    routeDecision: Decision,
    ban: Decision | undefined,
    next: Next,
  ): void => {
    const fail = failWith(limit, "onExceeded callback or errorResponseBuilder", next);
    try {
      const decision = ban ?? routeDecision;
      const retry = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
      // The answer describes this limit only: fields another limit of the request set when it admitted it (a route's
      // limit, then a rateLimitHook of the app's) go. A 403 has no budget fields at all: the route's rules may admit
      // again long before the ban ends, so only Retry-After, until the ban ends, says when to come back.
      for (const name of BUDGET_HEADERS) reply.removeHeader(name);
      // A fail-closed rejection (Redis unreachable) knows no budget: only Retry-After, as for a ban.
      const unknown = ban !== undefined || decision.reason === "fail-closed";
      if (!unknown) setHeaders(limit, pair, decision, reply);
      else if (limit.retryAfter) reply.header("Retry-After", retry);
      notify(limit, "onExceeded", request, raw);
      const status = ban === undefined ? 429 : 403;
      if (limit.errorResponseBuilder !== undefined) {
        const body = limit.errorResponseBuilder(request, {
          statusCode: status,
          ban: ban !== undefined,
          after: words(decision.retryAfterMs),
          max: decision.limit,
          ttl: decision.retryAfterMs,
          rule: decision.rule,
          route: limit.id,
          decision,
        });
        const send = (value: unknown): void => {
          if (value === null || typeof value !== "object") {
            next(
              new InvalidArgumentError(
                "errorResponseBuilder",
                `the errorResponseBuilder of ${limit.id} returned ${validate.describeValue(value)}; expected an object`,
              ),
            );
          } else reply.code(status).send(value);
        };
        if (isThenable(body)) (body as PromiseLike<unknown>).then(send, fail);
        else send(body);
        return;
      }
      if (ban !== undefined) {
        problem(reply, 403, "Forbidden", `Too many rejected requests; banned for ${retry} s.`);
      } else if (decision.reason === "fail-closed") {
        const detail = `The rate limiter cannot reach its store and refuses requests until it can (onRedisError "fail-closed"); retry after ${retry} s.`;
        problem(reply, 429, "Too Many Requests", detail);
      } else {
        problem(reply, 429, "Too Many Requests", `Rate limit "${decision.rule}" exceeded; retry after ${retry} s.`);
      }
    } catch (err) {
      fail(err);
    }
  };

  const setHeaders = (limit: RouteLimit, pair: RuleSetLimiter, decision: Decision, reply: FastifyReply): void => {
    // Same fields as toHeaders() of @coordis/ratelimit, built from the decision's most constraining rule directly.
    const t = decision.allowed
      ? Math.max(0, Math.ceil(decision.resetMs / 1000))
      : Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    // An admitted request that an earlier limit of it admitted too (a route's limit, then a rateLimitHook of the
    // app's) carries both: the draft fields are lists (one item per policy), the legacy set tells the limit with
    // fewer units left. A rejection's fields were cleared first: they describe the rejecting limit alone.
    const earlier = limit.draft && decision.allowed ? reply.getHeader("RateLimit-Policy") : undefined;
    if (limit.draft) {
      const item = `"${decision.rule}";r=${decision.remaining};t=${t}`;
      if (typeof earlier === "string") {
        const [policies, items] = mergeDraft(earlier, reply.getHeader("RateLimit"), pair.policy, item);
        reply.header("RateLimit-Policy", policies);
        reply.header("RateLimit", items);
      } else {
        reply.header("RateLimit-Policy", pair.policy);
        reply.header("RateLimit", item);
      }
    }
    const left = limit.legacy && decision.allowed ? reply.getHeader("x-ratelimit-remaining") : undefined;
    if (limit.legacy && (left === undefined || Number(left) > decision.remaining)) {
      reply.header("x-ratelimit-limit", decision.limit);
      reply.header("x-ratelimit-remaining", decision.remaining);
      reply.header("x-ratelimit-reset", t);
    }
    if (!decision.allowed && limit.retryAfter) reply.header("Retry-After", t);
  };

  return check;
}

/** The name of a draft field's item, `"burst"` of `"burst";q=10;w=1`. */
const itemName = (text: string): string => text.slice(0, text.indexOf(";"));

/** The `r` of a `RateLimit` item. */
const itemRemaining = (text: string): number => Number(/;r=(\d+)/.exec(text)?.[1] ?? Number.NaN);

/**
 * The draft fields of a request two limits admitted: the earlier limit's (`policies`, `limits`) and this one's
 * (`policy`, `item`). Policies are told by name (a client tracks each by its name), so a policy both limits have,
 * same name and figures (rules both took from the plugin defaults), is listed once, its `RateLimit` item the one with
 * fewer units left. Same-named rules of other figures are both listed.
 */
function mergeDraft(policies: string, limits: unknown, policy: string, item: string): [string, string] {
  const listed = policies.split(", ");
  const own = policy.split(", ");
  const added = own.filter((p) => !listed.includes(p));
  const items = typeof limits === "string" && limits !== "" ? limits.split(", ") : [];
  const name = itemName(item);
  const shared = !added.some((p) => itemName(p) === name);
  const at = shared ? items.findIndex((i) => itemName(i) === name) : -1;
  if (at < 0) items.push(item);
  else if (itemRemaining(item) < itemRemaining(items[at] as string)) items[at] = item;
  return [added.length === 0 ? policies : `${policies}, ${added.join(", ")}`, items.join(", ")];
}

/** A Fastify hook (callback style: no promise for the hook itself) running `limit` through `check`. */
export function hookFor(check: RateLimitCheck, limit: RouteLimit) {
  if (limit.hook === "preParsing") {
    return function coordisRateLimit(
      request: FastifyRequest,
      reply: FastifyReply,
      payload: unknown,
      done: (err?: Error | null, payload?: unknown) => void,
    ) {
      check(limit, request, reply, (err) => done(err ?? null, payload));
    };
  }
  return function coordisRateLimit(request: FastifyRequest, reply: FastifyReply, done: Next) {
    check(limit, request, reply, done);
  };
}
