import {
  assertSafeClient,
  type BatchOptions,
  type ConnectOptions,
  type CoordisObserver,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  type RedisClient,
  validate,
  validatePrefix,
} from "@coordis/core";
import type { CoordisMetricsOptions } from "@coordis/metrics";
import { type Decision, RateLimiter, type RedisErrorPolicy, type Rule } from "@coordis/ratelimit";
import type { FastifyRequest } from "fastify";
import { isValidGroup } from "./rate-limit-key.js";

/** Computes the rate-limit key of a request (an API key, a user id, `req.ip`...): a non-empty string. */
export type RateLimitKeyFn = (request: FastifyRequest) => string | Promise<string>;

/** The rules of a request, chosen per request (e.g. by the caller's plan). Return one of a few constant arrays. */
export type RateLimitRulesFn = (request: FastifyRequest, key: string) => Rule[] | Promise<Rule[]>;

/** The request lifecycle hook the limit runs in. `onRequest` runs before the body is parsed (cheapest). */
export type RateLimitHook = "onRequest" | "preParsing" | "preValidation" | "preHandler";

/** Which headers the limit adds. */
export interface RateLimitHeaderOptions {
  /** IETF draft-11 `RateLimit` and `RateLimit-Policy`. Default true. */
  draft?: boolean;
  /** The `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` set of @fastify/rate-limit. Default false. */
  legacy?: boolean;
  /** `Retry-After` on 429 and 403 answers. Default true. */
  retryAfter?: boolean;
  /** Add the rate-limit headers to admitted responses too, not only to rejected ones. Default true. */
  onAllowed?: boolean;
}

/** What `errorResponseBuilder` is told about a rejected request. */
export interface RateLimitExceededContext {
  /** 429, or 403 once the key is banned (see `ban`). */
  statusCode: 429 | 403;
  /** Whether the key is banned. */
  ban: boolean;
  /** Time until the request would pass, in words (e.g. `"12 seconds"`). */
  after: string;
  /** Capacity of the rule that rejected the request (for a 403, the ban's: `ban`). */
  max: number;
  /** Ms until the request would pass (for a 403, until the ban ends). */
  ttl: number;
  /** Name of the rule that rejected the request (`"ban"` for a 403). */
  rule: string;
  /** The route, `"<METHOD> <url>"`. */
  route: string;
  /** The limiter's decision (for a 403, the ban's). */
  decision: Decision;
}

/** Settings a route's limit takes, from the route (`config.coordis.rateLimit`) or the plugin defaults. */
export interface RateLimitSettings {
  /** The rules (see `Rule` of @coordis/ratelimit), or a function of the request returning them. */
  rules?: Rule[] | RateLimitRulesFn;
  /**
   * Key function. Default `(req) => addressKey(req.ip)`: the client address (the socket address, or the one from
   * `X-Forwarded-For` only when Fastify was created with `trustProxy`), an IPv6 address by its /64 network. A key
   * function of your own that keys by address should call `addressKey` too, never use `req.ip` as it is. It must
   * return a non-empty string; anything else answers 500.
   */
  key?: RateLimitKeyFn;
  /** Units one request costs (default 1), or a function of the request. */
  cost?: number | ((request: FastifyRequest) => number);
  /**
   * Keys that are never limited (no Redis call, no headers), or a function deciding it. `false`: no allow list (a
   * route's way to leave out the plugin default's).
   */
  allowList?: readonly string[] | ((request: FastifyRequest, key: string) => boolean | Promise<boolean>) | false;
  /** Lifecycle hook the limit runs in; default `"onRequest"` (`"preHandler"` for keys from the authenticated user). */
  hook?: RateLimitHook;
  /** Header toggles. */
  headers?: RateLimitHeaderOptions;
  /** Builds the body of a 429 / 403 answer (sent as JSON) instead of the default problem details. */
  errorResponseBuilder?: (request: FastifyRequest, context: RateLimitExceededContext) => object;
  /**
   * Called for every admitted request. One that throws fails the request with its error; a promise it returns is not
   * waited for, and its rejection is logged.
   */
  onExceeding?: (request: FastifyRequest, key: string) => void;
  /** Called for every rejected request; like `onExceeding`, a promise it returns is not waited for. */
  onExceeded?: (request: FastifyRequest, key: string) => void;
  /**
   * After this many 429 answers to one key within the longest window of the route's rules, the key gets 403 until
   * that window has passed, even when a shorter rule would admit it again (the ban is read before the rules: one more
   * script call per request). Only Redis bans: a failure policy's rejection counts toward no ban. Default off; `false`
   * turns off a ban the plugin defaults set (a route's way to have none).
   */
  ban?: number | false;
}

/** Rate-limit defaults of the plugin (`options.rateLimit`), used by routes that do not say otherwise. */
export interface RateLimitDefaults extends RateLimitSettings {
  /** Limit every route with these defaults; a route opts out with `config: { coordis: { rateLimit: false } }`. */
  global?: boolean;
  /**
   * A budget name every route shares (`[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}`). Default none: each route has its own
   * budget. Routes sharing a group must have identical, named rules.
   */
  group?: string;
  /** What to do when Redis is unavailable (see `RateLimiter`); default `"throw"`, answered as 503. */
  onRedisError?: RedisErrorPolicy;
  /** Local deny cache of the limiter (see `RateLimiter`); default off. */
  denyCache?: boolean | { maxKeys?: number };
  /**
   * Micro-batching of the limiter calls (see `RateLimiter`). `"auto"` (default) and `true`: the limiter calls made
   * in one event-loop turn share one script call per hash slot, and a call alone in its turn is sent as the plain
   * consume script at the end of that turn; `{ maxSize, maxDelayMs }`: the same with these settings; `false`: one
   * script call per request, sent at once. Each request is still decided atomically on its own.
   */
  batch?: "auto" | boolean | BatchOptions;
}

/** A route's rate limit (`config: { coordis: { rateLimit: ... } }`): `true` uses the plugin defaults; fields override them. */
export interface RouteRateLimit extends RateLimitSettings {
  /** A budget name shared with other routes (see `RateLimitDefaults.group`). Default: the route's own budget. */
  group?: string;
}

/** The Coordis part of a route's config. */
export interface CoordisRouteConfig {
  /** `true` for the plugin defaults, an object of overrides, or `false` to opt out of global limiting. */
  rateLimit?: boolean | RouteRateLimit;
}

/** Options of the plugin. Give either `redis` (yours; left open on close) or `url` (opened and closed by the plugin). */
export interface CoordisPluginOptions {
  /**
   * An ioredis client to use; the plugin never closes it. It must not re-send unanswered commands and must have a
   * command timeout: build it with `new Redis({ ...safeRedisOptions, ... })` (@coordis/core) or `connect()`.
   */
  redis?: RedisClient;
  /** A Redis URL for `connect()` of @coordis/core, when `redis` is not given. Default `redis://127.0.0.1:6379`. */
  url?: string | undefined;
  /** Options for `connect()` when the plugin opens the connection. */
  connectOptions?: ConnectOptions;
  /** Key prefix of everything created through the plugin; default `"coordis"`. */
  prefix?: string;
  /** An observer of your own, combined with the metrics observer. */
  observer?: CoordisObserver;
  /**
   * Prometheus metrics (@coordis/metrics). `true` serves them at `/metrics`; an object picks the `path` (or `false`
   * for no route) and the prom-client `registry` (default the global one).
   */
  metrics?: boolean | { path?: string | false; registry?: CoordisMetricsOptions["registry"] };
  /** Defaults of per-route rate limits. */
  rateLimit?: RateLimitDefaults;
  /**
   * Longest wait for the connection the plugin opened to close gracefully on `onClose`, ms (default 1000); then it
   * is cut. A reconnecting or dead connection is cut at once.
   */
  closeTimeoutMs?: number;
}

/** The hooks a limit may run in, in lifecycle order. */
export const HOOKS: readonly RateLimitHook[] = ["onRequest", "preParsing", "preValidation", "preHandler"];
/** Longest wait for the plugin's own connection to close gracefully, ms. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 1_000;

const SETTINGS_KEYS = [
  "rules",
  "key",
  "cost",
  "allowList",
  "hook",
  "headers",
  "errorResponseBuilder",
  "onExceeding",
  "onExceeded",
  "ban",
] as const;
const DEFAULTS_KEYS = [...SETTINGS_KEYS, "global", "group", "onRedisError", "denyCache", "batch"] as const;
const ROUTE_KEYS = [...SETTINGS_KEYS, "group"] as const;
const PLUGIN_KEYS = [
  "redis",
  "url",
  "connectOptions",
  "prefix",
  "observer",
  "metrics",
  "rateLimit",
  "closeTimeoutMs",
] as const;
const HEADER_KEYS = ["draft", "legacy", "retryAfter", "onAllowed"] as const;

/** The plugin's options, validated, with defaults filled in. */
export interface PluginSettings {
  /** The user's client (never closed by the plugin), or `undefined` when the plugin opens one from `url`. */
  readonly redis: RedisClient | undefined;
  readonly url: string | undefined;
  readonly connectOptions: ConnectOptions | undefined;
  readonly prefix: string;
  readonly observer: CoordisObserver | undefined;
  /** `undefined` without metrics; `path: false` for metrics without a route. */
  readonly metrics:
    | { readonly path: string | false; readonly registry?: CoordisMetricsOptions["registry"] }
    | undefined;
  readonly rateLimit: RateLimitDefaults;
  readonly batch: "auto" | boolean | BatchOptions;
  /** Options of every limiter the plugin creates (besides rules, batch and observer). */
  readonly limiterOptions: {
    readonly prefix: string;
    readonly onRedisError?: RedisErrorPolicy;
    readonly denyCache?: boolean | { maxKeys?: number };
  };
  readonly closeTimeoutMs: number;
}

/** The keys of core's `connect()` options. */
const CONNECT_KEYS = [
  "commandTimeoutMs",
  "connectTimeoutMs",
  "tls",
  "redisOptions",
  "clusterOptions",
  "observer",
] as const satisfies readonly (keyof ConnectOptions)[];

/** The same InvalidArgumentError under another option path (a limiter's `options.rules[0]` is the route's `...rules[0]`). */
export function renamed(err: unknown, path: string): unknown {
  if (!(err instanceof InvalidArgumentError)) return err;
  const reason = err.message.replace(/^Invalid argument "[^"]*": /, "");
  return new InvalidArgumentError(`${path}.${err.argument.replace(/^options\./, "")}`, reason);
}

function optionalFunc(name: string, value: unknown): void {
  if (value !== undefined) validate.func(name, value);
}

/** Checks a group name (`name` is the option's path). @throws InvalidArgumentError */
function checkGroup(name: string, group: unknown): void {
  if (!isValidGroup(group)) {
    throw new InvalidArgumentError(
      name,
      `expected a group name of 1-64 letters, digits, "_", ".", ":" or "-", starting with a letter or digit, got ${validate.describeValue(group)}`,
    );
  }
}

/** Validates the fields of settings shared by the defaults and the routes (rules are checked by the limiter). */
function checkSettings(name: string, s: RateLimitSettings): void {
  if (s.rules !== undefined && typeof s.rules !== "function" && !Array.isArray(s.rules)) {
    throw new InvalidArgumentError(`${name}.rules`, "expected an array of rules or a function returning one");
  }
  optionalFunc(`${name}.key`, s.key);
  if (s.cost !== undefined && typeof s.cost !== "function") validate.positiveInteger(`${name}.cost`, s.cost);
  if (s.allowList !== undefined && s.allowList !== false && typeof s.allowList !== "function") {
    if (!Array.isArray(s.allowList)) {
      throw new InvalidArgumentError(
        `${name}.allowList`,
        `expected an array of keys, a function, or false (no allow list), got ${validate.describeValue(s.allowList)}`,
      );
    }
    s.allowList.forEach((k, i) => {
      validate.string(`${name}.allowList[${i}]`, k);
    });
  }
  if (s.hook !== undefined) validate.oneOf(`${name}.hook`, s.hook, HOOKS);
  if (s.headers !== undefined) {
    const h = validate.options<Record<string, unknown>>(`${name}.headers`, s.headers, HEADER_KEYS);
    for (const k of HEADER_KEYS) if (h[k] !== undefined) validate.boolean(`${name}.headers.${k}`, h[k]);
  }
  optionalFunc(`${name}.errorResponseBuilder`, s.errorResponseBuilder);
  optionalFunc(`${name}.onExceeding`, s.onExceeding);
  optionalFunc(`${name}.onExceeded`, s.onExceeded);
  if (s.ban !== undefined && s.ban !== false) {
    // @fastify/rate-limit turns its ban off with -1 (or any negative number): here that is `false`.
    if (typeof s.ban === "number" && s.ban < 1) {
      throw new InvalidArgumentError(
        `${name}.ban`,
        `expected a number of 429 answers from 1 to 1000000, or false for no ban, got ${s.ban}`,
      );
    }
    validate.positiveInteger(`${name}.ban`, s.ban, 1_000_000);
  }
}

/**
 * Validates the plugin's options whole (unknown keys included) before anything is opened or sent, and fills in
 * the defaults.
 * @throws InvalidArgumentError naming the option
 */
export function parsePluginOptions(raw: unknown): PluginSettings {
  const opts = validate.options<CoordisPluginOptions>("options", raw, PLUGIN_KEYS);
  const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
  validate.observer("options.observer", opts.observer);
  if (opts.url !== undefined) validate.string("options.url", opts.url);
  if (opts.redis !== undefined && opts.url !== undefined) {
    throw new InvalidArgumentError("options.url", "give either redis or url, not both");
  }
  if (opts.redis !== undefined && opts.connectOptions !== undefined) {
    throw new InvalidArgumentError("options.connectOptions", "only used with url (the plugin does not open redis)");
  }
  if (opts.connectOptions !== undefined) validate.options("options.connectOptions", opts.connectOptions, CONNECT_KEYS);
  if (opts.redis !== undefined) {
    validate.redisClient("options.redis", opts.redis);
    assertSafeClient(opts.redis, "options.redis");
  }
  const closeTimeoutMs =
    opts.closeTimeoutMs === undefined
      ? DEFAULT_CLOSE_TIMEOUT_MS
      : validate.durationMs("options.closeTimeoutMs", opts.closeTimeoutMs, { min: 1, max: 60_000 });
  // null is a bad value, not "not given" (as for every option).
  const metricsOpt = opts.metrics === undefined ? false : opts.metrics;
  let metrics: PluginSettings["metrics"];
  if (metricsOpt === null) {
    throw new InvalidArgumentError("options.metrics", "expected true, false or { path?, registry? }, got null");
  }
  if (typeof metricsOpt !== "boolean") {
    const m = validate.options<{ path: unknown; registry: unknown }>("options.metrics", metricsOpt, [
      "path",
      "registry",
    ]);
    if (m.path !== undefined && m.path !== false) {
      const path = validate.string("options.metrics.path", m.path);
      if (!path.startsWith("/"))
        throw new InvalidArgumentError("options.metrics.path", `must start with "/" (got "${path}")`);
    }
    const registry = m.registry as { getSingleMetric?: unknown; metrics?: unknown } | null | undefined;
    if (
      registry !== undefined &&
      (registry === null || typeof registry.getSingleMetric !== "function" || typeof registry.metrics !== "function")
    ) {
      throw new InvalidArgumentError("options.metrics.registry", "expected a prom-client Registry");
    }
    metrics = {
      path: metricsOpt.path ?? "/metrics",
      ...(metricsOpt.registry === undefined ? {} : { registry: metricsOpt.registry }),
    };
  } else if (metricsOpt) {
    metrics = { path: "/metrics" };
  }
  const defaults = validate.options<RateLimitDefaults>("options.rateLimit", opts.rateLimit, DEFAULTS_KEYS);
  checkSettings("options.rateLimit", defaults);
  if (defaults.global !== undefined) validate.boolean("options.rateLimit.global", defaults.global);
  if (defaults.group !== undefined) checkGroup("options.rateLimit.group", defaults.group);
  const batch = defaults.batch === undefined ? "auto" : defaults.batch;
  if (batch === null) {
    throw new InvalidArgumentError(
      "options.rateLimit.batch",
      'expected "auto", true, false or { maxSize?, maxDelayMs? }, got null',
    );
  }
  if (batch !== "auto" && typeof batch !== "boolean") {
    validate.options("options.rateLimit.batch", batch, ["maxSize", "maxDelayMs"]);
  }
  const limiterOptions = {
    prefix,
    ...(defaults.onRedisError === undefined ? {} : { onRedisError: defaults.onRedisError }),
    ...(defaults.denyCache === undefined ? {} : { denyCache: defaults.denyCache }),
  };
  // The limiter validates the failure policy, deny cache, batch settings and default rules: build one now.
  const probeRules = Array.isArray(defaults.rules) ? defaults.rules : [{ name: "probe", limit: 1, windowMs: 1000 }];
  try {
    new RateLimiter(opts.redis ?? ({ evalsha() {}, eval() {} } as unknown as RedisClient), {
      ...limiterOptions,
      rules: probeRules,
      batch: batch === "auto" ? true : batch,
    });
  } catch (err) {
    throw renamed(err, "options.rateLimit");
  }
  return {
    redis: opts.redis,
    url: opts.url,
    connectOptions: opts.connectOptions,
    prefix,
    observer: opts.observer,
    metrics,
    rateLimit: defaults,
    batch,
    limiterOptions,
    closeTimeoutMs,
  };
}

/**
 * Validates a route's `config.coordis` (`where` names the route's config) and returns its rate-limit settings:
 * `undefined` when the route is not limited, `{}` for the plugin defaults.
 * @throws InvalidArgumentError naming the route's option
 */
export function parseRouteRateLimit(where: string, raw: unknown, global: boolean): RouteRateLimit | undefined {
  const ns = validate.options<CoordisRouteConfig>(`${where}.coordis`, raw, ["rateLimit"]);
  const name = `${where}.coordis.rateLimit`;
  // null is a bad value, not "not given": under global limits it would limit a route whose author meant to opt out.
  if (ns.rateLimit === null) {
    throw new InvalidArgumentError(
      name,
      "expected true (the plugin defaults), false (no limit, also under global) or an object of settings, got null",
    );
  }
  const setting = ns.rateLimit === undefined ? (global ? true : undefined) : ns.rateLimit;
  if (setting === undefined || setting === false) return undefined;
  if (setting === true) return {};
  const own = validate.options<RouteRateLimit>(name, setting, ROUTE_KEYS);
  checkSettings(name, own);
  if (own.group !== undefined) checkGroup(`${name}.group`, own.group);
  return own;
}

/** The settings a rate-limit hook of the app's own takes: a route's, but `hook` (it runs where it is added). */
const HOOK_KEYS = ROUTE_KEYS.filter((k) => k !== "hook");

/**
 * Parses the settings of `coordis.rateLimitHook(settings)`: `undefined` or `true` (the plugin defaults) or an object
 * of a route's settings without `hook`. @throws InvalidArgumentError naming the setting
 */
export function parseHookRateLimit(name: string, raw: unknown): RouteRateLimit {
  if (raw === undefined || raw === true) return {};
  if (raw === null || typeof raw !== "object") {
    throw new InvalidArgumentError(
      name,
      `expected true (the plugin defaults) or an object of settings, got ${validate.describeValue(raw)}`,
    );
  }
  const own = validate.options<RouteRateLimit>(name, raw, HOOK_KEYS);
  checkSettings(name, own);
  if (own.group !== undefined) checkGroup(`${name}.group`, own.group);
  return own;
}
