import {
  type ConnectOptions,
  type CoordisObserver,
  combineObservers,
  connect,
  DEFAULT_PREFIX,
  InvalidArgumentError,
  type RedisClient,
  RedisUnavailableError,
  validatePrefix,
} from "@coordis/core";
import { type CoordisMetrics, type CoordisMetricsOptions, coordisMetrics } from "@coordis/metrics";
import { type Decision, RateLimiter, type RedisErrorPolicy, type Rule, toHeaders } from "@coordis/ratelimit";
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchema,
  onRequestHookHandler,
  RouteOptions,
} from "fastify";
import fp from "fastify-plugin";
import { isValidGroup, rateLimitKey } from "./rate-limit-key.js";

/** Computes the rate-limit key of a request (an API key, a user id, `req.ip`...). */
export type RateLimitKeyFn = (request: FastifyRequest) => string | Promise<string>;

/** Rate-limit defaults of the plugin (`options.rateLimit`), used by routes that do not say otherwise. */
export interface RateLimitDefaults {
  /** Default rules (see `Rule` of @coordis/ratelimit). Required by routes that use `rateLimit: true`. */
  rules?: Rule[];
  /**
   * Default key function. Default `(req) => req.ip`: the socket address, or the client address from
   * `X-Forwarded-For` only when Fastify was created with `trustProxy` (Fastify decides; the plugin never reads
   * forwarding headers itself).
   */
  key?: RateLimitKeyFn;
  /**
   * Budget name shared by every route using it (`[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}`); default `"default"`. Routes
   * with the same group and key draw from one budget, so give them the same rules.
   */
  group?: string;
  /** What to do when Redis is unavailable (see `RateLimiter`); default `"throw"`, answered as 503. */
  onRedisError?: RedisErrorPolicy;
  /** Local deny cache of the limiter (see `RateLimiter`); default off. */
  denyCache?: boolean | { maxKeys?: number };
}

/** A route's rate limit (`config: { rateLimit: ... }`): `true` uses the plugin defaults; fields override them. */
export interface RouteRateLimit {
  rules?: Rule[];
  key?: RateLimitKeyFn;
  group?: string;
  /** Units one request costs (default 1), or a function of the request. */
  cost?: number | ((request: FastifyRequest) => number);
}

/** Options of the plugin. Give either `redis` (yours; left open on close) or `url` (opened and closed by the plugin). */
export interface CoordisPluginOptions {
  /** An ioredis client to use. The plugin never closes it. */
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
   * Reads the state of a route-level budget without consuming: the same key a route with `group` uses.
   * @throws InvalidArgumentError for bad rules or group; RedisUnavailableError
   */
  peekRateLimit(key: string, options?: { rules?: Rule[]; group?: string }): Promise<Decision>;
  /** Registers a function run (awaited) when Fastify closes, before the plugin's own connection closes. */
  onClose(fn: () => unknown): void;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Coordis primitives' shared connection, observer and factories (from @coordis/fastify). */
    coordis: CoordisDecorator;
  }
  interface FastifyContextConfig {
    /** Per-route rate limit of @coordis/fastify: `true` for the plugin defaults, or overrides. */
    rateLimit?: boolean | RouteRateLimit;
  }
}

/** Body of a 429 or 503 answer (RFC 9457 problem details). */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const PROBLEM_TYPE = "application/problem+json";

function sendProblem(reply: FastifyReply, problem: ProblemDetails) {
  return reply.code(problem.status).type(PROBLEM_TYPE).send(problem);
}

function specOf(rules: Rule[]): string {
  return JSON.stringify(rules.map((r) => [r.name, r.limit, r.windowMs, r.algorithm, r.burst]));
}

async function coordisPlugin(fastify: FastifyInstance, options: CoordisPluginOptions): Promise<void> {
  const opts = options ?? {};
  const prefix = opts.prefix === undefined ? DEFAULT_PREFIX : validatePrefix(opts.prefix, "options.prefix");
  const metricsOpt = opts.metrics ?? false;
  const metrics =
    metricsOpt === false
      ? undefined
      : coordisMetrics(
          metricsOpt === true || metricsOpt.registry === undefined ? {} : { registry: metricsOpt.registry },
        );
  const observers = [metrics?.observer, opts.observer].filter((o): o is CoordisObserver => o !== undefined);
  const observer: CoordisObserver =
    observers.length === 1 ? (observers[0] as CoordisObserver) : combineObservers(...observers);
  const owned = opts.redis === undefined;
  const redis = opts.redis ?? connect(opts.url, { observer, ...opts.connectOptions });

  const defaults = opts.rateLimit ?? {};
  const defaultGroup = defaults.group ?? "default";
  if (!isValidGroup(defaultGroup)) throw new InvalidArgumentError("options.rateLimit.group", "invalid group name");
  const limiters = new Map<string, RateLimiter>();
  const closers: Array<() => unknown> = [];

  const rateLimiter = (rules: Rule[]): RateLimiter => {
    const spec = specOf(rules);
    let limiter = limiters.get(spec);
    if (limiter === undefined) {
      limiter = new RateLimiter(redis, {
        rules,
        prefix,
        observer,
        ...(defaults.onRedisError === undefined ? {} : { onRedisError: defaults.onRedisError }),
        ...(defaults.denyCache === undefined ? {} : { denyCache: defaults.denyCache }),
      });
      limiters.set(spec, limiter);
    }
    return limiter;
  };

  const decorator: CoordisDecorator = {
    redis,
    prefix,
    observer,
    metrics,
    options: <T extends object>(extra?: T) => ({ ...(extra as T), prefix, observer }),
    rateLimiter,
    async peekRateLimit(key, peekOptions = {}) {
      const rules = peekOptions.rules ?? defaults.rules;
      if (rules === undefined) throw new InvalidArgumentError("options.rules", "no rules given and no default rules");
      const group = peekOptions.group ?? defaultGroup;
      if (!isValidGroup(group)) throw new InvalidArgumentError("options.group", "invalid group name");
      return rateLimiter(rules).peek(rateLimitKey(group, key));
    },
    onClose(fn) {
      closers.push(fn);
    },
  };
  fastify.decorate("coordis", decorator);

  fastify.addHook("onRoute", (route: RouteOptions) => {
    const config = (route.config ?? {}) as { rateLimit?: boolean | RouteRateLimit };
    const setting = config.rateLimit;
    if (setting === undefined || setting === false) return;
    const own: RouteRateLimit = setting === true ? {} : setting;
    const where = `route ${route.method} ${route.url}: config.rateLimit`;
    const rules = own.rules ?? defaults.rules;
    if (rules === undefined) throw new InvalidArgumentError(`${where}.rules`, "no rules and no plugin default rules");
    const group = own.group ?? defaultGroup;
    if (!isValidGroup(group)) throw new InvalidArgumentError(`${where}.group`, "invalid group name");
    const keyFn: RateLimitKeyFn = own.key ?? defaults.key ?? ((req) => req.ip);
    const cost = own.cost ?? 1;
    // Built now, so bad rules fail at startup rather than on the first request.
    const limiter = rateLimiter(rules);
    const hook: onRequestHookHandler = async (request, reply) => {
      const raw = await keyFn(request);
      const key = rateLimitKey(group, typeof raw === "string" ? raw : String(raw));
      let decision: Decision;
      try {
        decision = await limiter.consume(key, typeof cost === "function" ? cost(request) : cost);
      } catch (err) {
        if (err instanceof RedisUnavailableError) {
          return sendProblem(reply, {
            type: "about:blank",
            title: "Service Unavailable",
            status: 503,
            detail: "The rate limiter cannot reach its store; try again shortly.",
          });
        }
        throw err;
      }
      const headers = toHeaders(decision, limiter.rules);
      reply.header("RateLimit-Policy", headers["RateLimit-Policy"]).header("RateLimit", headers.RateLimit);
      if (!decision.allowed) {
        reply.header("Retry-After", headers["Retry-After"] ?? "1");
        return sendProblem(reply, {
          type: "about:blank",
          title: "Too Many Requests",
          status: 429,
          detail: `Rate limit "${decision.rule}" exceeded; retry after ${headers["Retry-After"] ?? "1"} s.`,
        });
      }
    };
    const existing = route.onRequest;
    route.onRequest = existing === undefined ? [hook] : [hook, ...(Array.isArray(existing) ? existing : [existing])];
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
    fastify.get(metricsPath, { schema: { hide: true } as FastifySchema }, async (_request, reply) => {
      const body = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(body);
    });
  }

  fastify.addHook("onClose", async () => {
    for (const fn of closers.splice(0).reverse()) await fn();
    if (owned) {
      // Resolve only once the socket is gone ("end"), so a closed app leaves no connection behind.
      const ended = new Promise<void>((resolve) => {
        if (redis.status === "end") resolve();
        else redis.once("end", () => resolve());
      });
      try {
        await redis.quit();
      } catch {
        redis.disconnect();
      }
      await ended;
    }
  });
}

/**
 * The Coordis Fastify plugin: one Redis connection (yours, or opened from `url` and closed on `onClose`), the
 * `fastify.coordis` decorator, per-route rate limits from route `config.rateLimit` answering 429 with
 * `application/problem+json`, `Retry-After` and the IETF draft-11 `RateLimit` / `RateLimit-Policy` headers, and an
 * optional `/metrics` route.
 *
 * @example
 * await app.register(coordis, { url: process.env.REDIS_URL, metrics: true,
 *   rateLimit: { rules: [{ name: "burst", limit: 10, windowMs: 1000 }], key: (req) => req.ip } });
 * app.get("/hello", { config: { rateLimit: true } }, async () => "hi");
 * @throws InvalidArgumentError at registration for a bad prefix, group or rules
 */
export const coordis = fp(coordisPlugin, { name: "@coordis/fastify", fastify: "5.x" });
