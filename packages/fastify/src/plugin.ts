import {
  assertSafeClient,
  type BatchOptions,
  type ConnectOptions,
  type CoordisObserver,
  combineObservers,
  connect,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  noopObserver,
  type RedisClient,
  RedisUnavailableError,
  validate,
  validatePrefix,
} from "@coordis/core";
import { type CoordisMetrics, type CoordisMetricsOptions, coordisMetrics } from "@coordis/metrics";
import { type Decision, RateLimiter, type RedisErrorPolicy, type Rule } from "@coordis/ratelimit";
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema, RouteOptions } from "fastify";
import fp from "fastify-plugin";
import { closeClient } from "./close.js";
import { isValidGroup, rateLimitKey, routeGroup } from "./rate-limit-key.js";

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
  /** Capacity of the rule that rejected the request. */
  max: number;
  /** Ms until the request would pass. */
  ttl: number;
  /** Name of the rule that rejected the request. */
  rule: string;
  /** The route, `"<METHOD> <url>"`. */
  route: string;
  /** The limiter's decision. */
  decision: Decision;
}

/** Settings a route's limit takes, from the route (`config.coordis.rateLimit`) or the plugin defaults. */
export interface RateLimitSettings {
  /** The rules (see `Rule` of @coordis/ratelimit), or a function of the request returning them. */
  rules?: Rule[] | RateLimitRulesFn;
  /**
   * Key function. Default `(req) => req.ip`: the socket address, or the client address from `X-Forwarded-For` only
   * when Fastify was created with `trustProxy`. It must return a non-empty string; anything else answers 500.
   */
  key?: RateLimitKeyFn;
  /** Units one request costs (default 1), or a function of the request. */
  cost?: number | ((request: FastifyRequest) => number);
  /** Keys that are never limited (no Redis call, no headers), or a function deciding it. */
  allowList?: readonly string[] | ((request: FastifyRequest, key: string) => boolean | Promise<boolean>);
  /** Lifecycle hook the limit runs in; default `"onRequest"` (`"preHandler"` for keys from the authenticated user). */
  hook?: RateLimitHook;
  /** Header toggles. */
  headers?: RateLimitHeaderOptions;
  /** Builds the body of a 429 / 403 answer (sent as JSON) instead of the default problem details. */
  errorResponseBuilder?: (request: FastifyRequest, context: RateLimitExceededContext) => object;
  /** Called for every admitted request. */
  onExceeding?: (request: FastifyRequest, key: string) => void;
  /** Called for every rejected request. */
  onExceeded?: (request: FastifyRequest, key: string) => void;
  /**
   * After this many 429 answers to one key within the longest window of the route's rules, the key gets 403 until
   * that window has passed. Default off.
   */
  ban?: number;
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
   * Micro-batching of the limiter calls (see `RateLimiter`). `"auto"` (default): a call is batched while another
   * limiter call is in flight, unbatched when it is alone. `true`/`{ maxSize, maxDelayMs }`: always;
   * `false`: never. Each request is still decided atomically on its own.
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
  url?: string;
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
  options<T extends object>(extra?: T): T & { prefix: string; observer: CoordisObserver };
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

declare module "fastify" {
  interface FastifyInstance {
    /** Coordis primitives' shared connection, observer and factories (from @coordis/fastify). */
    coordis: CoordisDecorator;
  }
  interface FastifyContextConfig {
    /** Route settings of @coordis/fastify (namespaced, so @fastify/rate-limit's `rateLimit` can live beside it). */
    coordis?: CoordisRouteConfig;
  }
}

/** Body of a 429, 403, 500 or 503 answer (RFC 9457 problem details). */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const PROBLEM_TYPE = "application/problem+json";
const HOOKS: readonly RateLimitHook[] = ["onRequest", "preParsing", "preValidation", "preHandler"];
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
/**
 * `batch: "auto"` sends a limiter call micro-batched when at least this many others are in flight: a lone request
 * is not held for a batch, and as soon as requests overlap they share script calls.
 */
const AUTO_BATCH_IN_FLIGHT = 1;
/** Distinct rule sets a rules function may produce before it is an error (a limiter is cached per set). */
const MAX_DYNAMIC_RULE_SETS = 256;

function problem(reply: FastifyReply, status: number, title: string, detail: string) {
  return reply.code(status).type(PROBLEM_TYPE).send({ type: "about:blank", title, status, detail });
}

/** Rejects unknown keys of an options object (a typo must not silently become a default). */
function checkKeys(name: string, value: unknown, allowed: readonly string[]): Record<string, unknown> {
  const obj = validate.options<Record<string, unknown>>(name, value);
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) {
      throw new InvalidArgumentError(`${name}.${k}`, `unknown option (known: ${allowed.join(", ")})`);
    }
  }
  return obj;
}

/** The same InvalidArgumentError under another option path (a limiter's `options.rules[0]` is the route's `...rules[0]`). */
function renamed(err: unknown, path: string): unknown {
  if (!(err instanceof InvalidArgumentError)) return err;
  const reason = err.message.replace(/^Invalid argument "[^"]*": /, "");
  return new InvalidArgumentError(`${path}.${err.argument.replace(/^options\./, "")}`, reason);
}

function optionalFunc(name: string, value: unknown): void {
  if (value !== undefined) validate.func(name, value);
}

/** Validates the fields of settings shared by the defaults and the routes (rules are checked by the limiter). */
function checkSettings(name: string, s: RateLimitSettings): void {
  if (s.rules !== undefined && typeof s.rules !== "function" && !Array.isArray(s.rules)) {
    throw new InvalidArgumentError(`${name}.rules`, "expected an array of rules or a function returning one");
  }
  optionalFunc(`${name}.key`, s.key);
  if (s.cost !== undefined && typeof s.cost !== "function") validate.positiveInteger(`${name}.cost`, s.cost);
  if (s.allowList !== undefined && typeof s.allowList !== "function") {
    if (!Array.isArray(s.allowList)) {
      throw new InvalidArgumentError(`${name}.allowList`, "expected an array of keys or a function");
    }
    s.allowList.forEach((k, i) => {
      validate.string(`${name}.allowList[${i}]`, k);
    });
  }
  if (s.hook !== undefined) validate.oneOf(`${name}.hook`, s.hook, HOOKS);
  if (s.headers !== undefined) {
    const h = checkKeys(`${name}.headers`, s.headers, HEADER_KEYS);
    for (const k of HEADER_KEYS) if (h[k] !== undefined) validate.boolean(`${name}.headers.${k}`, h[k]);
  }
  optionalFunc(`${name}.errorResponseBuilder`, s.errorResponseBuilder);
  optionalFunc(`${name}.onExceeding`, s.onExceeding);
  optionalFunc(`${name}.onExceeded`, s.onExceeded);
  if (s.ban !== undefined) validate.positiveInteger(`${name}.ban`, s.ban, 1_000_000);
}

function specOf(rules: readonly Rule[]): string {
  return JSON.stringify(rules.map((r) => [r.name, r.limit, r.windowMs, r.algorithm, r.burst]));
}

function routeId(method: string | string[], url: string): string {
  return `${Array.isArray(method) ? method.join(",") : method} ${url}`;
}

function words(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  return s === 1 ? "1 second" : `${s} seconds`;
}

/** A limiter pair for one rule set: unbatched, and batched when batching may be used. */
interface LimiterPair {
  readonly plain: RateLimiter | undefined;
  readonly batched: RateLimiter | undefined;
  /** `"<name>";q=<limit>;w=<s>, ...`, computed once. */
  readonly policy: string;
}

/** A route's limit, resolved and validated once. */
interface RouteLimit {
  readonly id: string;
  readonly group: string;
  readonly hook: RateLimitHook;
  readonly key: RateLimitKeyFn;
  readonly rules: LimiterPair | RateLimitRulesFn;
  readonly cost: number | ((request: FastifyRequest) => number);
  readonly allow: ReadonlySet<string> | ((request: FastifyRequest, key: string) => boolean | Promise<boolean>) | null;
  readonly draft: boolean;
  readonly legacy: boolean;
  readonly retryAfter: boolean;
  readonly onAllowed: boolean;
  readonly errorResponseBuilder: RateLimitSettings["errorResponseBuilder"];
  readonly onExceeding: RateLimitSettings["onExceeding"];
  readonly onExceeded: RateLimitSettings["onExceeded"];
  readonly ban: number | undefined;
}

const defaultKey: RateLimitKeyFn = (request) => request.ip;

/** Continues a request (`next()`) or fails it (`next(err)`). */
type Next = (err?: Error) => void;

function isThenable(value: unknown): value is Promise<unknown> {
  return value !== null && typeof value === "object" && typeof (value as { then?: unknown }).then === "function";
}

async function coordisPlugin(fastify: FastifyInstance, options: CoordisPluginOptions): Promise<void> {
  // Everything is validated before anything is opened or sent.
  const opts = checkKeys("options", options, PLUGIN_KEYS) as CoordisPluginOptions;
  const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
  validate.observer("options.observer", opts.observer);
  if (opts.url !== undefined) validate.string("options.url", opts.url);
  if (opts.redis !== undefined && opts.url !== undefined) {
    throw new InvalidArgumentError("options.url", "give either redis or url, not both");
  }
  if (opts.redis !== undefined && opts.connectOptions !== undefined) {
    throw new InvalidArgumentError("options.connectOptions", "only used with url (the plugin does not open redis)");
  }
  if (opts.redis !== undefined) {
    validate.redisClient("options.redis", opts.redis);
    assertSafeClient(opts.redis, "options.redis");
  }
  const closeTimeoutMs =
    opts.closeTimeoutMs === undefined
      ? 1_000
      : validate.durationMs("options.closeTimeoutMs", opts.closeTimeoutMs, { min: 1, max: 60_000 });
  const metricsOpt = opts.metrics ?? false;
  if (typeof metricsOpt !== "boolean") {
    const m = checkKeys("options.metrics", metricsOpt, ["path", "registry"]);
    if (m.path !== undefined && m.path !== false) validate.string("options.metrics.path", m.path);
  }
  const defaults = checkKeys("options.rateLimit", opts.rateLimit, DEFAULTS_KEYS) as RateLimitDefaults;
  checkSettings("options.rateLimit", defaults);
  if (defaults.global !== undefined) validate.boolean("options.rateLimit.global", defaults.global);
  if (defaults.group !== undefined && !isValidGroup(defaults.group)) {
    throw new InvalidArgumentError("options.rateLimit.group", "invalid group name");
  }
  const batchMode = defaults.batch ?? "auto";
  if (batchMode !== "auto" && typeof batchMode !== "boolean") {
    checkKeys("options.rateLimit.batch", batchMode, ["maxSize", "maxDelayMs"]);
  }
  const limiterOptions = {
    prefix,
    ...(defaults.onRedisError === undefined ? {} : { onRedisError: defaults.onRedisError }),
    ...(defaults.denyCache === undefined ? {} : { denyCache: defaults.denyCache }),
  };
  // The limiter validates the failure policy, deny cache, batch settings and default rules: build one now.
  const probeRules = Array.isArray(defaults.rules) ? defaults.rules : [{ name: "probe", limit: 1, windowMs: 1000 }];
  const probeBatch = batchMode === "auto" ? true : batchMode;
  try {
    new RateLimiter(opts.redis ?? ({ evalsha() {}, eval() {} } as unknown as RedisClient), {
      ...limiterOptions,
      rules: probeRules,
      batch: probeBatch,
    });
  } catch (err) {
    throw renamed(err, "options.rateLimit");
  }

  const metrics =
    metricsOpt === false
      ? undefined
      : coordisMetrics(
          metricsOpt === true || metricsOpt.registry === undefined ? {} : { registry: metricsOpt.registry },
        );
  const observers = [metrics?.observer, opts.observer].filter((o): o is CoordisObserver => o !== undefined);
  const observer: CoordisObserver =
    observers.length === 0
      ? noopObserver
      : observers.length === 1
        ? (observers[0] as CoordisObserver)
        : combineObservers(...observers);
  // Limiters get no observer at all when nobody listens: no event is built per request.
  const limiterObserver = observers.length === 0 ? undefined : observer;
  const owned = opts.redis === undefined;
  const redis = opts.redis ?? connect(opts.url, { observer, ...opts.connectOptions });

  const limiters = new Map<string, LimiterPair>();
  const closers: Array<() => unknown> = [];
  let inFlight = 0;

  const pairOf = (rules: readonly Rule[]): LimiterPair => {
    const spec = specOf(rules);
    let pair = limiters.get(spec);
    if (pair === undefined) {
      const make = (batch: boolean | BatchOptions) =>
        new RateLimiter(redis, {
          ...limiterOptions,
          ...(limiterObserver === undefined ? {} : { observer: limiterObserver }),
          rules: rules as Rule[],
          batch,
        });
      const plain = batchMode === false || batchMode === "auto" ? make(false) : undefined;
      const batched = batchMode === false ? undefined : make(batchMode === "auto" ? true : batchMode);
      const any = (plain ?? batched) as RateLimiter;
      const policy = any.rules.map((r) => `"${r.name}";q=${r.limit};w=${Math.ceil(r.windowMs / 1000)}`).join(", ");
      pair = { plain, batched, policy };
      limiters.set(spec, pair);
    }
    return pair;
  };
  const limiterOf = (pair: LimiterPair): RateLimiter =>
    pair.plain === undefined
      ? (pair.batched as RateLimiter)
      : pair.batched === undefined || inFlight < AUTO_BATCH_IN_FLIGHT
        ? pair.plain
        : pair.batched;

  const rateLimiter = (rules: Rule[]): RateLimiter => {
    const pair = pairOf(rules);
    return (pair.plain ?? pair.batched) as RateLimiter;
  };

  const decorator: CoordisDecorator = {
    redis,
    prefix,
    observer,
    metrics,
    options: <T extends object>(extra?: T) => ({ ...(extra as T), prefix, observer }),
    rateLimiter,
    async peekRateLimit(key, peekOptions = {}) {
      checkKeys("options", peekOptions, ["rules", "group", "route"]);
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
  fastify.decorate("coordis", decorator);

  /** Group name -> the rules spec and first route, to check that routes sharing a group agree. */
  const groups = new Map<string, { spec: string | RateLimitRulesFn; route: string }>();

  /** Resolves and validates a route's limit; `undefined` when the route has none. */
  const resolve = (method: string | string[], url: string, config: unknown): RouteLimit | undefined => {
    const id = routeId(method, url);
    const where = `route ${id}: config`;
    const cfg = (config ?? {}) as { rateLimit?: unknown; coordis?: unknown };
    // config.rateLimit belongs to @fastify/rate-limit; a Coordis-shaped one is a leftover that would silently do nothing.
    const legacy = cfg.rateLimit as Record<string, unknown> | boolean | undefined;
    if (
      legacy === true ||
      (legacy !== null &&
        typeof legacy === "object" &&
        ("rules" in legacy || "group" in legacy || "cost" in legacy || "key" in legacy))
    ) {
      throw new InvalidArgumentError(
        `${where}.rateLimit`,
        "@coordis/fastify reads config.coordis.rateLimit (config.rateLimit is @fastify/rate-limit's); move it there",
      );
    }
    if (cfg.coordis === undefined && defaults.global !== true) return undefined;
    const ns = checkKeys(`${where}.coordis`, cfg.coordis, ["rateLimit"]) as CoordisRouteConfig;
    const setting = ns.rateLimit ?? (defaults.global === true ? true : undefined);
    if (setting === undefined || setting === false) return undefined;
    const own: RouteRateLimit =
      setting === true ? {} : (checkKeys(`${where}.coordis.rateLimit`, setting, ROUTE_KEYS) as RouteRateLimit);
    const name = `${where}.coordis.rateLimit`;
    checkSettings(name, own);
    const rules = own.rules ?? defaults.rules;
    if (rules === undefined) throw new InvalidArgumentError(`${name}.rules`, "no rules and no plugin default rules");
    const explicitGroup = own.group ?? defaults.group;
    if (explicitGroup !== undefined && !isValidGroup(explicitGroup)) {
      throw new InvalidArgumentError(`${name}.group`, "invalid group name");
    }
    let pair: LimiterPair | undefined;
    if (typeof rules !== "function") {
      try {
        pair = pairOf(rules);
      } catch (err) {
        throw renamed(err, name);
      }
    }
    const cost = own.cost ?? defaults.cost ?? 1;
    if (pair !== undefined && typeof cost === "number") {
      const capacity = Math.min(...((pair.plain ?? pair.batched) as RateLimiter).rules.map((r) => r.capacity));
      if (cost > capacity) {
        throw new InvalidArgumentError(`${name}.cost`, `${cost} is above the smallest rule capacity ${capacity}`);
      }
    }
    const group = explicitGroup ?? routeGroup(method, url);
    if (explicitGroup !== undefined) {
      if (Array.isArray(rules) && rules.some((r) => r === null || typeof r !== "object" || r.name === undefined)) {
        throw new InvalidArgumentError(
          `${name}.rules`,
          `routes sharing group "${explicitGroup}" need named rules (a name is part of the shared budget's state)`,
        );
      }
      const spec = typeof rules === "function" ? rules : specOf(rules);
      const first = groups.get(explicitGroup);
      if (first === undefined) groups.set(explicitGroup, { spec, route: id });
      else if (first.spec !== spec && first.route !== id) {
        throw new InvalidArgumentError(
          `${name}.rules`,
          `group "${explicitGroup}" is shared with route ${first.route}, which has different rules; routes sharing a group need identical rules`,
        );
      }
    }
    const allowList = own.allowList ?? defaults.allowList;
    const headers = { ...defaults.headers, ...own.headers };
    return {
      id,
      group,
      hook: own.hook ?? defaults.hook ?? "onRequest",
      key: own.key ?? defaults.key ?? defaultKey,
      rules: pair ?? (rules as RateLimitRulesFn),
      cost,
      allow: allowList === undefined ? null : typeof allowList === "function" ? allowList : new Set(allowList),
      draft: headers.draft ?? true,
      legacy: headers.legacy ?? false,
      retryAfter: headers.retryAfter ?? true,
      onAllowed: headers.onAllowed ?? true,
      errorResponseBuilder: own.errorResponseBuilder ?? defaults.errorResponseBuilder,
      onExceeding: own.onExceeding ?? defaults.onExceeding,
      onExceeded: own.onExceeded ?? defaults.onExceeded,
      ban: own.ban ?? defaults.ban,
    };
  };

  /** Rules functions' results -> limiter pairs, by array identity first (the usual constant arrays). */
  const dynamicPairs = new WeakMap<object, LimiterPair>();
  const pairOfDynamic = async (limit: RouteLimit, request: FastifyRequest, key: string): Promise<LimiterPair> => {
    const rules = await (limit.rules as RateLimitRulesFn)(request, key);
    if (rules !== null && typeof rules === "object") {
      const known = dynamicPairs.get(rules);
      if (known !== undefined) return known;
    }
    if (!Array.isArray(rules))
      throw new InvalidArgumentError("rules", `the rules function of ${limit.id} returned no array`);
    if (!limiters.has(specOf(rules)) && limiters.size >= MAX_DYNAMIC_RULE_SETS) {
      throw new InvalidArgumentError(
        "rules",
        `more than ${MAX_DYNAMIC_RULE_SETS} distinct rule sets; reuse constant arrays`,
      );
    }
    const pair = pairOf(rules);
    dynamicPairs.set(rules, pair);
    return pair;
  };

  const banPairs = new Map<string, LimiterPair>();
  const banPairOf = (limit: RouteLimit, pair: LimiterPair): LimiterPair => {
    const windowMs = Math.max(...(pair.plain ?? (pair.batched as RateLimiter)).rules.map((r) => r.windowMs));
    const id = `${limit.ban}/${windowMs}`;
    let p = banPairs.get(id);
    if (p === undefined) {
      p = pairOf([{ name: "ban", limit: limit.ban as number, windowMs }]);
      banPairs.set(id, p);
    }
    return p;
  };

  /**
   * Runs a route's limit and calls `next()` to let the request go on, `next(err)` on an error, or nothing when it
   * answered the request itself (429, 403, 500 or 503). Callback style, so the common path (a string key, static
   * rules) costs one promise, the limiter's.
   */
  const check = (limit: RouteLimit, request: FastifyRequest, reply: FastifyReply, next: Next): void => {
    let raw: string | Promise<string>;
    try {
      raw = limit.key(request);
    } catch (err) {
      next(err as Error);
      return;
    }
    if (isThenable(raw)) raw.then((k) => withKey(limit, request, reply, k, next), next);
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
        .then((allowed) => (allowed ? next() : withRules(limit, request, reply, raw, next)), next);
    }
  };

  const withRules = (limit: RouteLimit, request: FastifyRequest, reply: FastifyReply, raw: string, next: Next) => {
    if (typeof limit.rules !== "function") {
      consume(limit, limit.rules, request, reply, raw, next);
    } else {
      pairOfDynamic(limit, request, raw).then((pair) => consume(limit, pair, request, reply, raw, next), next);
    }
  };

  const consume = (
    limit: RouteLimit,
    pair: LimiterPair,
    request: FastifyRequest,
    reply: FastifyReply,
    raw: string,
    next: Next,
  ) => {
    let cost: number;
    let pending: Promise<Decision>;
    try {
      cost = typeof limit.cost === "function" ? limit.cost(request) : limit.cost;
      inFlight++;
      pending = limiterOf(pair).consume(rateLimitKey(limit.group, raw), cost);
    } catch (err) {
      next(err as Error);
      return;
    }
    pending.then(
      (decision) => {
        inFlight--;
        if (decision.allowed) {
          if (limit.onAllowed) setHeaders(limit, pair, decision, reply);
          try {
            limit.onExceeding?.(request, raw);
          } catch (err) {
            next(err as Error);
            return;
          }
          next();
        } else {
          rejected(limit, pair, request, reply, raw, decision).then((answered) => {
            if (!answered) next();
          }, next);
        }
      },
      (err: unknown) => {
        inFlight--;
        if (err instanceof RedisUnavailableError) {
          problem(reply, 503, "Service Unavailable", "The rate limiter cannot reach its store; try again shortly.");
        } else {
          next(err as Error);
        }
      },
    );
  };

  /** Answers a rejected request (429, or 403 once banned); resolves true when it did. */
  const rejected = async (
    limit: RouteLimit,
    pair: LimiterPair,
    request: FastifyRequest,
    reply: FastifyReply,
    raw: string,
    decision: Decision,
  ): Promise<boolean> => {
    let banned = false;
    if (limit.ban !== undefined) {
      try {
        const ban = await limiterOf(banPairOf(limit, pair)).consume(rateLimitKey(limit.group, `ban:${raw}`), 1);
        banned = !ban.allowed;
      } catch (err) {
        if (!(err instanceof RedisUnavailableError)) throw err;
      }
    }
    setHeaders(limit, pair, decision, reply);
    limit.onExceeded?.(request, raw);
    const status = banned ? 403 : 429;
    if (limit.errorResponseBuilder !== undefined) {
      const body = limit.errorResponseBuilder(request, {
        statusCode: status,
        ban: banned,
        after: words(decision.retryAfterMs),
        max: decision.limit,
        ttl: decision.retryAfterMs,
        rule: decision.rule,
        route: limit.id,
        decision,
      });
      reply.code(status).send(body);
      return true;
    }
    const retry = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    if (banned) {
      problem(reply, 403, "Forbidden", `Too many rejected requests; banned for ${retry} s.`);
    } else {
      problem(reply, 429, "Too Many Requests", `Rate limit "${decision.rule}" exceeded; retry after ${retry} s.`);
    }
    return true;
  };

  const setHeaders = (limit: RouteLimit, pair: LimiterPair, decision: Decision, reply: FastifyReply): void => {
    // Same fields as toHeaders() of @coordis/ratelimit, built from the decision's most constraining rule directly.
    const t = decision.allowed
      ? Math.max(0, Math.ceil(decision.resetMs / 1000))
      : Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
    if (limit.draft) {
      reply.header("RateLimit-Policy", pair.policy);
      reply.header("RateLimit", `"${decision.rule}";r=${decision.remaining};t=${t}`);
    }
    if (limit.legacy) {
      reply.header("x-ratelimit-limit", decision.limit);
      reply.header("x-ratelimit-remaining", decision.remaining);
      reply.header("x-ratelimit-reset", t);
    }
    if (!decision.allowed && limit.retryAfter) reply.header("Retry-After", t);
  };

  /** A Fastify hook (callback style: no promise for the hook itself) running `limit`. */
  const hookFor = (limit: RouteLimit) => {
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
  };

  /** Routes wired by the onRoute hook, by id. */
  const wired = new Set<string>();

  // Routes declared before this plugin loaded (an un-awaited register) never reach its onRoute hook. Fastify builds
  // every route's hook list at ready time from its instance's hooks, and addHook reaches existing child instances,
  // so instance-level guard hooks reach those routes: they resolve the route's limit on its first request.
  if (fastify.printRoutes() !== "(empty tree)") {
    // Per route (its context's config object), resolved once: null for routes without a limit or already wired.
    const lazy = new WeakMap<object, RouteLimit | null | Error>();
    const lazyLimit = (request: FastifyRequest): RouteLimit | null | Error => {
      const ro = request.routeOptions;
      const config = ro.config as object;
      let limit = lazy.get(config);
      if (limit === undefined) {
        try {
          limit = wired.has(routeId(ro.method, ro.url ?? ""))
            ? null
            : (resolve(ro.method, ro.url ?? "", config) ?? null);
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

  fastify.addHook("onRoute", (route: RouteOptions) => {
    const limit = resolve(route.method, route.url, route.config);
    if (limit === undefined) return;
    wired.add(limit.id);
    const hook = hookFor(limit);
    const existing = route[limit.hook] as unknown;
    const others = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
    // onRequest: first, before any work of the route. Later hooks: after the route's own hooks of that phase, so a
    // key can come from what they set (e.g. the user a route-level preHandler authenticated).
    (route as unknown as Record<string, unknown>)[limit.hook] =
      limit.hook === "onRequest" ? [hook, ...others] : [...others, hook];
  });

  const metricsPath =
    metricsOpt === false
      ? false
      : metricsOpt === true
        ? "/metrics"
        : metricsOpt.path === undefined
          ? "/metrics"
          : metricsOpt.path;
  if (metrics !== undefined && metricsPath !== false) {
    // `hide` keeps the route out of @fastify/swagger documents when that plugin is used.
    fastify.get(
      metricsPath,
      { schema: { hide: true } as FastifySchema, config: { coordis: { rateLimit: false } } },
      async (_request, reply) => {
        const body = await metrics.registry.metrics();
        return reply.type(metrics.registry.contentType).send(body);
      },
    );
  }

  fastify.addHook("onClose", async () => {
    for (const fn of closers.splice(0).reverse()) await fn();
    if (owned) await closeClient(redis, closeTimeoutMs);
  });
}

/**
 * The Coordis Fastify plugin: one Redis connection (yours, or opened from `url` and closed on `onClose`), the
 * `fastify.coordis` decorator, per-route rate limits from route `config.coordis.rateLimit` answering 429 with
 * `application/problem+json`, `Retry-After` and the IETF draft-11 `RateLimit` / `RateLimit-Policy` headers, and an
 * optional `/metrics` route.
 *
 * @example
 * app.register(coordis, { url: process.env.REDIS_URL, metrics: true,
 *   rateLimit: { rules: [{ name: "burst", limit: 10, windowMs: 1000 }], key: (req) => req.ip } });
 * app.get("/hello", { config: { coordis: { rateLimit: true } } }, async () => "hi");
 * @throws InvalidArgumentError at registration for an unknown or bad option, an unsafe client, bad rules or a group
 *   shared by routes with different rules
 */
export const coordis = fp(coordisPlugin, { name: "@coordis/fastify", fastify: "5.x" });
