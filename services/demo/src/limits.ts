import { addressKey } from "@coordis/fastify";
import type { Rule } from "@coordis/ratelimit";
import type { FastifyContextConfig, FastifyRequest } from "fastify";
import type { DemoConfig } from "./config.js";

/** The demo's rate limits, built once per replica from its configuration. */
export interface RateLimits {
  /**
   * The public API's two rules, a burst rule and a daily one, checked together on one budget per API key (group
   * `api`). The plugin's defaults and the admin reset use this same array.
   */
  readonly apiRules: Rule[];
  /** Route config of the public API: the plugin's defaults. */
  readonly api: FastifyContextConfig;
  /** Route config of the admin endpoints: 60 per minute per client address. */
  readonly admin: FastifyContextConfig;
  /** Route config of the event streams: opening one is limited per address too (each audit stream reads the log). */
  readonly streams: FastifyContextConfig;
  /**
   * Route config of the dashboard's data routes: one budget per address for all of them (each read costs Redis tens
   * of commands; they spend no API budget, so the page's polling never eats into a visitor's API calls).
   */
  readonly dashboard: FastifyContextConfig;
}

/** The client address, an IPv6 one by its /64 (a host picks addresses from a whole /64). */
const byAddress = (request: FastifyRequest) => addressKey(request.ip);

/** The rate limits of a replica with configuration `config`. */
export function rateLimits(config: DemoConfig): RateLimits {
  return {
    apiRules: [
      { name: "burst", limit: config.burstLimit, windowMs: config.burstWindowMs },
      { name: "daily", limit: config.dailyLimit, windowMs: 86_400_000 },
    ],
    api: { coordis: { rateLimit: true } },
    admin: {
      coordis: {
        rateLimit: { rules: [{ name: "admin", limit: 60, windowMs: 60_000 }], group: "admin", key: byAddress },
      },
    },
    streams: {
      coordis: {
        rateLimit: { rules: [{ name: "streams", limit: 60, windowMs: 60_000 }], group: "streams", key: byAddress },
      },
    },
    dashboard: {
      coordis: {
        rateLimit: {
          rules: [{ name: "dashboard", limit: config.dashboardLimit, windowMs: 60_000 }],
          group: "dashboard",
          key: byAddress,
        },
      },
    },
  };
}
