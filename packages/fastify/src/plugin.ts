import {
  assertSafeClient,
  type CoordisObserver,
  combineObservers,
  connect,
  InvalidArgumentError,
  noopObserver,
  type RedisClient,
} from "@coordis/core";
import { type CoordisMetrics, type CoordisMetricsOptions, coordisMetrics } from "@coordis/metrics";
import type { FastifyInstance, FastifySchema, RouteOptions } from "fastify";
import fp from "fastify-plugin";
import { closeClient } from "./close.js";
import { type CoordisDecorator, createDecorator } from "./decorator.js";
import { guardEarlyRoutes, WIRED } from "./early-routes.js";
import { GroupLedger } from "./group-ledger.js";
import { Limiters } from "./limiters.js";
import {
  type CoordisPluginOptions,
  type CoordisRouteConfig,
  type PluginSettings,
  parsePluginOptions,
  renamed,
} from "./options.js";
import { hookFor, rateLimitCheck } from "./request-hook.js";
import { RouteLimits } from "./route-limit.js";

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

async function coordisPlugin(fastify: FastifyInstance, options: CoordisPluginOptions): Promise<void> {
  // Everything is validated before anything is opened or sent.
  const settings = parsePluginOptions(options);
  if (fastify.hasDecorator("coordis")) {
    // A parent's registration limits this context's routes already (its onRoute hook reaches them): a second one
    // would limit them again, under its own defaults and budgets, each answer showing the fields of one of the two.
    throw new InvalidArgumentError(
      "fastify",
      "@coordis/fastify is already registered in this context or a parent one, whose route limits reach the routes " +
        "declared here; register it once, in the context that holds every limited route (give a route settings of " +
        "its own in config.coordis.rateLimit), or in sibling contexts neither of which contains the other",
    );
  }
  const { closeTimeoutMs } = settings;
  const metrics = settings.metrics === undefined ? undefined : pluginMetrics(settings.metrics.registry);
  const observers = [metrics?.observer, settings.observer].filter((o): o is CoordisObserver => o !== undefined);
  const observer: CoordisObserver =
    observers.length === 0
      ? noopObserver
      : observers.length === 1
        ? (observers[0] as CoordisObserver)
        : combineObservers(...observers);
  const owned = settings.redis === undefined;
  let redis: RedisClient;
  if (settings.redis !== undefined) redis = settings.redis;
  else {
    // An observer of connectOptions hears the connection's events too, beside the plugin's (and the metrics').
    const own = settings.connectOptions?.observer;
    const connObserver = own === undefined ? observer : combineObservers(observer, own);
    try {
      redis = connect(settings.url, { ...settings.connectOptions, observer: connObserver });
    } catch (err) {
      // connect() names its own arguments: `url`, `options.<key>`.
      if (err instanceof InvalidArgumentError && err.argument === "url") throw renamed(err, "options");
      throw err instanceof InvalidArgumentError ? renamed(err, "options.connectOptions") : err;
    }
  }
  try {
    await wire(fastify, settings, redis, owned, metrics, observer, observers.length === 0 ? undefined : observer);
  } catch (err) {
    // Registration failed after the connection opened (a route clash, an unsafe connectOptions...): nothing will
    // close it on onClose, so it is closed here.
    if (owned) await closeClient(redis, closeTimeoutMs);
    throw err;
  }
}

/**
 * The metrics of `registry` (the global one when undefined). coordisMetrics() names its own option in its errors
 * (`options.registry`, "give coordisMetrics() another registry"): the plugin's user passed `options.metrics.registry`
 * (or nothing, the global registry), so the error names that. @throws InvalidArgumentError
 */
function pluginMetrics(registry: CoordisMetricsOptions["registry"]): CoordisMetrics {
  try {
    return coordisMetrics(registry === undefined ? {} : { registry });
  } catch (err) {
    if (!(err instanceof InvalidArgumentError) || err.argument !== "options.registry") throw err;
    const reason = err.message
      .replace(/^Invalid argument "[^"]*": /, "")
      .replace("give coordisMetrics() another registry", "give the plugin another one (metrics: { registry })");
    throw registry === undefined
      ? new InvalidArgumentError("options.metrics", `the global prom-client registry ${reason}`)
      : new InvalidArgumentError("options.metrics.registry", reason);
  }
}

/** Everything after the connection: checks, the decorator, route limits, /metrics and onClose. @throws */
async function wire(
  fastify: FastifyInstance,
  settings: PluginSettings,
  redis: RedisClient,
  owned: boolean,
  metrics: CoordisMetrics | undefined,
  observer: CoordisObserver,
  limiterObserver: CoordisObserver | undefined,
): Promise<void> {
  // The plugin's own client must be as safe as one it would accept from the user (connectOptions.redisOptions may
  // have undone a setting).
  if (owned) assertSafeClient(redis, "options.connectOptions");

  // Limiters get no observer at all when nobody listens: no event is built per request.
  const limiters = new Limiters(redis, settings, limiterObserver);
  // The groups of every registration with this prefix on this server: their budgets are the same Redis keys.
  const routes = new RouteLimits(settings.rateLimit, limiters, new GroupLedger(redis, settings.prefix));
  try {
    await wireRoutes(fastify, settings, redis, owned, metrics, observer, limiters, routes);
  } catch (err) {
    routes.release();
    throw err;
  }
}

/** The decorator, route limits, /metrics and onClose (which forgets the routes' groups). @throws */
async function wireRoutes(
  fastify: FastifyInstance,
  settings: PluginSettings,
  redis: RedisClient,
  owned: boolean,
  metrics: CoordisMetrics | undefined,
  observer: CoordisObserver,
  limiters: Limiters,
  routes: RouteLimits,
): Promise<void> {
  const { prefix, closeTimeoutMs } = settings;
  const closers: Array<() => unknown> = [];
  let closed = false;
  const defaults = settings.rateLimit;
  const check = rateLimitCheck(limiters);
  fastify.decorate(
    "coordis",
    createDecorator({
      redis,
      prefix,
      observer,
      metrics,
      defaults,
      limiters,
      routes,
      closers,
      closed: () => closed,
      check,
    }),
  );

  const resolve = routes.resolve.bind(routes);
  guardEarlyRoutes(fastify, resolve, check);

  fastify.addHook("onRoute", (route: RouteOptions) => {
    const constraints = route.constraints as Readonly<Record<string, unknown>> | undefined;
    const limit = resolve(route.method, route.url, route.config, constraints, budgetUrl(route));
    // Marked in its own copy of the config (the route's context gets it): the early-route guard leaves it alone, and
    // only it (another route of the same method and URL, declared early, is still the guard's).
    route.config = { ...(route.config as object), [WIRED]: true } as typeof route.config;
    if (limit === undefined) return;
    const hook = hookFor(check, limit);
    const existing = route[limit.hook] as unknown;
    const others = existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
    // After the route's own hooks of that phase (as @fastify/rate-limit places it), so a key can come from what they
    // set (e.g. the user a route-level onRequest or preHandler hook authenticated). Instance hooks run before both.
    (route as unknown as Record<string, unknown>)[limit.hook] = [...others, hook];
  });

  const metricsPath = settings.metrics?.path ?? false;
  if (metrics !== undefined && metricsPath !== false) {
    // `hide` keeps the route out of @fastify/swagger documents when that plugin is used.
    try {
      fastify.get(
        metricsPath,
        { schema: { hide: true } as FastifySchema, config: { coordis: { rateLimit: false } } },
        async (_request, reply) => {
          const body = await metrics.registry.metrics();
          return reply.type(metrics.registry.contentType).send(body);
        },
      );
    } catch (err) {
      // The app serves that path already (its own metrics): Fastify's error, with what to do about it.
      if ((err as { code?: unknown }).code === "FST_ERR_DUPLICATED_ROUTE" && err instanceof Error) {
        err.message +=
          ` (@coordis/fastify serves its metrics there because of the metrics option: give metrics: { path: false }` +
          " to leave the route to you, whose registry then serves the Coordis series too (the global prom-client" +
          " registry, or metrics.registry when you give one), or another metrics.path)";
      }
      throw err;
    }
  }

  fastify.addHook("onClose", async () => {
    closed = true;
    routes.release();
    // Every cleanup runs, and the plugin's own connection closes, whatever a cleanup throws; the first error is
    // rethrown afterwards (Fastify's close rejects with it).
    const errors: unknown[] = [];
    for (const fn of closers.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        fastify.log.error({ err }, "a coordis.onClose() cleanup failed");
        errors.push(err);
      }
    }
    if (owned) await closeClient(redis, closeTimeoutMs);
    if (errors.length > 0) throw errors[0];
  });
}

/**
 * The URL a route's own budget is named after, when it is not the route's: a HEAD route of `/` in a context with a
 * prefix (`/v1`) serves `/v1/`, which the GET route of `/` serves as well, under the URL `/v1` (Fastify declares
 * that route at `/v1` and `/v1/`, but tells onRoute of `/v1` only, and adds a HEAD route for each URL). Named
 * after its own URL, HEAD /v1/ would have a budget of its own beside the GET route's.
 */
function budgetUrl(route: RouteOptions): string | undefined {
  const { prefix, routePath } = route as RouteOptions & { prefix?: unknown; routePath?: unknown };
  if (route.method !== "HEAD" || routePath !== "/" || typeof prefix !== "string" || prefix === "") return undefined;
  if (prefix.endsWith("/") || (route.prefixTrailingSlash ?? "both") !== "both") return undefined;
  return prefix;
}

/**
 * The Coordis Fastify plugin: one Redis connection (yours, or opened from `url` and closed on `onClose`), the
 * `fastify.coordis` decorator, per-route rate limits from route `config.coordis.rateLimit` answering 429 with
 * `application/problem+json`, `Retry-After` and the IETF draft-11 `RateLimit` / `RateLimit-Policy` headers, and an
 * optional `/metrics` route.
 *
 * @example
 * app.register(coordis, { url: process.env.REDIS_URL, metrics: true,
 *   rateLimit: { rules: [{ name: "burst", limit: 10, windowMs: 1000 }] } }); // keyed by client address
 * app.get("/hello", { config: { coordis: { rateLimit: true } } }, async () => "hi");
 * @throws InvalidArgumentError at registration for an unknown or bad option, an unsafe client, bad rules or a group
 *   shared by routes with different rules
 */
export const coordis = fp(coordisPlugin, { name: "@coordis/fastify", fastify: "5.x" });
