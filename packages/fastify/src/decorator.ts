import {
  ClosedError,
  type CoordisObserver,
  combineObservers,
  InvalidArgumentError,
  type RedisClient,
  validate,
} from "@coordis/core";
import type { CoordisMetrics } from "@coordis/metrics";
import type { Decision, RateLimiter, Rule } from "@coordis/ratelimit";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Limiters } from "./limiters.js";
import type { RateLimitDefaults, RouteRateLimit } from "./options.js";
import { budgetKey, isValidGroup } from "./rate-limit-key.js";
import { hookFor, type RateLimitCheck } from "./request-hook.js";
import type { RouteLimit, RouteLimits } from "./route-limit.js";

/** What the plugin decorates the Fastify instance with, as `fastify.coordis`. */
export interface CoordisDecorator {
  /** The shared Redis connection. */
  readonly redis: RedisClient;
  /** The key prefix. */
  readonly prefix: string;
  /** The observer to give every primitive (metrics plus yours). */
  readonly observer: CoordisObserver;
  /** The metrics, when enabled. */
  readonly metrics: CoordisMetrics | undefined;
  /**
   * Fills in `prefix` and `observer` for a primitive's options, e.g.
   * `new Leaderboard(app.coordis.redis, "scores", app.coordis.options({ periods: ["daily", "all"] }))`. A `prefix`
   * in `extra` is kept (the primitive validates it); an `observer` in `extra` is called beside the plugin's, so the
   * plugin's metrics still count the primitive.
   * @throws InvalidArgumentError when `extra` is not an object
   */
  options<const T extends object>(extra?: T): T & { prefix: string; observer: CoordisObserver };
  /**
   * The (cached) limiter for a set of rules, created with the plugin's prefix, observer and failure policy.
   * @throws InvalidArgumentError for bad rules (named `rules`, `rules[0].limit`...)
   */
  rateLimiter(rules: Rule[]): RateLimiter;
  /**
   * A rate-limit hook to add yourself, where the plugin adds none: the not-found handler
   * (`app.setNotFoundHandler({ preHandler: app.coordis.rateLimitHook({ group: "not-found" }) }, handler)`), or a
   * route's `onRequest` / `preHandler`. `settings` are a route's `config.coordis.rateLimit` settings but `hook`
   * (`true` or omitted: the plugin defaults); the budget is the `group` given, or the defaults' `group`.
   * @throws InvalidArgumentError for bad settings, or no group
   */
  rateLimitHook(settings?: true | Omit<RouteRateLimit, "hook">): RateLimitHookHandler;
  /**
   * Reads the state of a route budget without consuming: `route` (`"GET /login"`) for a limited route's budget, or
   * `group` for a shared one, by the rules of that route or group (`rules` to read others; the plugin defaults for a
   * group no route names).
   * @throws InvalidArgumentError for bad rules, group or route, or a route that has no limit; RedisUnavailableError
   */
  peekRateLimit(key: string, options?: { rules?: Rule[]; group?: string; route?: string }): Promise<Decision>;
  /**
   * Registers a function run (awaited) when Fastify closes, before the plugin's own connection closes.
   * @throws ClosedError once the app has closed (the function would never run: close that resource yourself)
   */
  onClose(fn: () => unknown): void;
}

/** What the decorator is built from. */
export interface DecoratorParts {
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly observer: CoordisObserver;
  readonly metrics: CoordisMetrics | undefined;
  readonly defaults: RateLimitDefaults;
  readonly limiters: Limiters;
  /** The routes' limits, to peek a route's or a group's budget by its own rules. */
  readonly routes: RouteLimits;
  /** Where `onClose(fn)` puts `fn`. */
  readonly closers: Array<() => unknown>;
  /** Whether the app's close has run the closers (`onClose(fn)` then throws). */
  readonly closed: () => boolean;
  /** Runs a request through a limit, as the plugin's route hooks do. */
  readonly check: RateLimitCheck;
}

/** A hook from {@link CoordisDecorator.rateLimitHook}: an `onRequest` or `preHandler` hook (callback style). */
export type RateLimitHookHandler = (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void;

/** Builds `fastify.coordis`. */
export function createDecorator(parts: DecoratorParts): CoordisDecorator {
  const { redis, prefix, observer, metrics, defaults, limiters, routes, closers, closed, check } = parts;
  /** The limiter of the rules given to a method, named `argument` in its errors. @throws InvalidArgumentError */
  const limiterOf = (argument: string, rules: unknown): RateLimiter => {
    if (!Array.isArray(rules)) {
      throw new InvalidArgumentError(argument, `expected an array of rules, got ${validate.describeValue(rules)}`);
    }
    try {
      return limiters.limiterOf(rules).limiter;
    } catch (err) {
      // The limiter names its own option, `options.rules[0].limit`: here it is the method's `rules[0].limit`.
      if (!(err instanceof InvalidArgumentError) || !err.argument.startsWith("options.rules")) throw err;
      const reason = err.message.replace(/^Invalid argument "[^"]*": /, "");
      throw new InvalidArgumentError(`${argument}${err.argument.slice("options.rules".length)}`, reason);
    }
  };
  const rateLimiter = (rules: Rule[]): RateLimiter => limiterOf("rules", rules);
  return {
    redis,
    prefix,
    observer,
    metrics,
    options: <T extends object>(extra?: T) => {
      if (extra !== undefined && (typeof extra !== "object" || extra === null || Array.isArray(extra))) {
        throw new InvalidArgumentError("extra", `expected an options object, got ${validate.describeValue(extra)}`);
      }
      const given = (extra ?? {}) as T & { prefix?: unknown; observer?: CoordisObserver };
      // Checked here: once combined with the plugin's, a bad observer would no longer be refused by the primitive.
      validate.observer("extra.observer", given.observer);
      // A prefix given is kept; an observer given hears every event beside the plugin's (its metrics).
      return {
        ...given,
        prefix: given.prefix === undefined ? prefix : (given.prefix as string),
        observer: given.observer === undefined ? observer : combineObservers(observer, given.observer),
      };
    },
    rateLimiter,
    rateLimitHook: (settings) => hookFor(check, routes.resolveHook(settings)) as RateLimitHookHandler,
    async peekRateLimit(key, peekOptions = {}) {
      validate.options("options", peekOptions, ["rules", "group", "route"]);
      if (peekOptions.group !== undefined && peekOptions.route !== undefined) {
        throw new InvalidArgumentError("options.route", "give group or route, not both");
      }
      let group: string;
      // The route's (or the group's) limit: its group and its rules are the budget's.
      let known: RouteLimit | undefined;
      if (peekOptions.route !== undefined) {
        const route = validate.string("options.route", peekOptions.route);
        known = routes.routeLimit(route);
        if (known === undefined) {
          throw new InvalidArgumentError(
            "options.route",
            `no rate-limited route "${route}": name a route with a limit as "<METHOD> <url>" (e.g. "POST /login", ` +
              'its URL pattern as declared, constraints as in its errors: "GET /v (version 2.0.0)"); a route ' +
              "declared before the plugin loaded is known from its first request on",
          );
        }
        group = known.group;
      } else {
        group = peekOptions.group ?? defaults.group ?? "";
        if (!isValidGroup(group)) throw new InvalidArgumentError("options.group", "give a valid group or a route");
        known = routes.groupLimit(group);
      }
      const stateKey = budgetKey(group, validate.string("key", key, { maxBytes: 1 << 20 }));
      if (peekOptions.rules === undefined && known !== undefined) {
        if (typeof known.rules === "function") {
          throw new InvalidArgumentError(
            "options.rules",
            `route ${known.id} chooses its rules per request (a rules function): give the rules to read`,
          );
        }
        return known.rules.limiter.peek(stateKey);
      }
      const rules = peekOptions.rules ?? (Array.isArray(defaults.rules) ? defaults.rules : undefined);
      if (rules === undefined) throw new InvalidArgumentError("options.rules", "no rules given and no default rules");
      return limiterOf("options.rules", rules).peek(stateKey);
    },
    onClose(fn) {
      validate.func("fn", fn);
      // After the close, nothing would ever run fn: the resource it closes would stay open, unnoticed.
      if (closed()) throw new ClosedError("Fastify app");
      closers.push(fn);
    },
  };
}
