import { type CoordisObserver, InvalidArgumentError, type RedisClient, validate } from "@coordis/core";
import type { CoordisMetrics } from "@coordis/metrics";
import type { Decision, RateLimiter, Rule } from "@coordis/ratelimit";
import type { Limiters } from "./limiters.js";
import type { RateLimitDefaults } from "./options.js";
import { isValidGroup, rateLimitKey, routeGroup } from "./rate-limit-key.js";

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
   * `new Leaderboard(app.coordis.redis, "scores", app.coordis.options({ periods: ["daily", "all"] }))`.
   */
  options<const T extends object>(extra?: T): T & { prefix: string; observer: CoordisObserver };
  /** The (cached) limiter for a set of rules, created with the plugin's prefix, observer and failure policy. */
  rateLimiter(rules: Rule[]): RateLimiter;
  /**
   * Reads the state of a route budget without consuming: `route` (`"GET /login"`) for a route's own budget, or
   * `group` for a shared one.
   * @throws InvalidArgumentError for bad rules, group or route; RedisUnavailableError
   */
  peekRateLimit(key: string, options?: { rules?: Rule[]; group?: string; route?: string }): Promise<Decision>;
  /** Registers a function run (awaited) when Fastify closes, before the plugin's own connection closes. */
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
  /** Where `onClose(fn)` puts `fn`. */
  readonly closers: Array<() => unknown>;
}

/** Builds `fastify.coordis`. */
export function createDecorator(parts: DecoratorParts): CoordisDecorator {
  const { redis, prefix, observer, metrics, defaults, limiters, closers } = parts;
  const rateLimiter = (rules: Rule[]): RateLimiter => limiters.limiterOf(rules).limiter;
  return {
    redis,
    prefix,
    observer,
    metrics,
    options: <T extends object>(extra?: T) => ({ ...(extra as T), prefix, observer }),
    rateLimiter,
    async peekRateLimit(key, peekOptions = {}) {
      validate.options("options", peekOptions, ["rules", "group", "route"]);
      const rules = peekOptions.rules ?? (Array.isArray(defaults.rules) ? defaults.rules : undefined);
      if (rules === undefined) throw new InvalidArgumentError("options.rules", "no rules given and no default rules");
      if (peekOptions.group !== undefined && peekOptions.route !== undefined) {
        throw new InvalidArgumentError("options.route", "give group or route, not both");
      }
      let group: string;
      if (peekOptions.route !== undefined) {
        const m = /^([A-Z,]+) (\S+)$/.exec(validate.string("options.route", peekOptions.route));
        if (m === null) throw new InvalidArgumentError("options.route", 'expected "<METHOD> <url>", e.g. "GET /login"');
        group = routeGroup(m[1] as string, m[2] as string);
      } else {
        group = peekOptions.group ?? defaults.group ?? "";
        if (!isValidGroup(group)) throw new InvalidArgumentError("options.group", "give a valid group or a route");
      }
      return rateLimiter(rules).peek(rateLimitKey(group, validate.string("key", key, { maxBytes: 1 << 20 })));
    },
    onClose(fn) {
      validate.func("fn", fn);
      closers.push(fn);
    },
  };
}
