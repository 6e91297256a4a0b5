import { coordis } from "@coordis/fastify";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyInstance } from "fastify";
import type { Registry } from "prom-client";
import { Activity } from "./activity.js";
import { apiKeyCheck, RequestKeys } from "./api-key-check.js";
import { ApiKeys, keepApiKeySecret, loadApiKeySecret } from "./apikeys.js";
import type { DemoConfig } from "./config.js";
import { rateLimits } from "./limits.js";
import { openApi } from "./openapi.js";
import { clientErrorHandler, frameworkErrors, problems } from "./problem.js";
import { adminRoutes } from "./routes/admin.js";
import { auditRoutes } from "./routes/audit.js";
import { dashboardRoutes } from "./routes/dashboard.js";
import { jobRoutes } from "./routes/jobs.js";
import { playerRoutes } from "./routes/players.js";
import { probeRoutes } from "./routes/probes.js";
import { queueRoutes } from "./routes/queue.js";
import { scoreRoutes } from "./routes/scores.js";
import { streamRoutes } from "./routes/streams.js";
import { createDemo } from "./services.js";
import { STATS_QUEUE } from "./stats.js";
import { validatorCompiler } from "./validation.js";

/** Options of {@link buildApp} beyond the environment's configuration. */
export interface BuildOptions {
  /** The prom-client registry of `/metrics` (tests pass a fresh one per app); default the global registry. */
  registry?: Registry;
  /** Start the cron jobs (default true). */
  jobs?: boolean;
  /** How often a replica checks that its API key secret is still the shared one, ms (default 5,000). */
  secretCheckMs?: number;
}

/**
 * Builds one replica of the game-scores API: routes, schemas, OpenAPI at `/docs`, the dashboard at `/`, SSE
 * streams, cron jobs, the player-stats queue and its worker, and the admin endpoints. Call `listen()` on the
 * result; `close()` stops everything it started.
 *
 * Root plugins first (error answers, OpenAPI, the Coordis plugin, the API key check), then one encapsulated plugin
 * per area of routes (routes/), each given the replica's shared primitives (services.ts).
 */
export async function buildApp(config: DemoConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    // close() ends idle keep-alive sockets and lets requests in flight finish (a deploy's SIGTERM must not cut a
    // submission off between its writes, nor answer its client with a reset); the hub ends the SSE streams.
    forceCloseConnections: "idle",
    // Router-level errors (malformed URL, over-long parameter) answer as problem documents too.
    frameworkErrors,
    // ...and so do requests Node's HTTP parser refuses (oversized or malformed headers).
    clientErrorHandler,
    // Path parameters up to the schemas' longest (a job id: 200 characters); Fastify's default cuts at 100 (414).
    routerOptions: { maxParamLength: 256 },
  }).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox checks the schemas: a body must hold the types its schema says ("score": true or "5" is a 400, where
  // Fastify's default validator would coerce it), while querystrings and params, text by nature, are converted
  // (an integer only from a whole number: `?n=1.5` is a 400, not 1; validation.ts).
  app.setValidatorCompiler(validatorCompiler);
  // Bodies are JSON: any other media type, text/plain included, is a 415.
  app.removeContentTypeParser("text/plain");
  // An empty JSON body is no body (Fastify's parser refuses it with a 400): `POST /v1/admin/keys` with
  // `content-type: application/json` and nothing after it issues one key, as without the header; where a route
  // needs a body, its schema answers the 400. Anything else goes to Fastify's parser (proto poisoning refused). A
  // compressed body (Content-Encoding) is a 415 that says so, not a 400 about the JSON its bytes are not.
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const encoding = request.headers["content-encoding"]?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== "" && encoding !== "identity") {
      const error = new Error(`Content-Encoding ${encoding} is not supported: send the JSON body uncompressed.`);
      done(Object.assign(error, { statusCode: 415 }), undefined);
    } else if (body === "") done(null, undefined);
    else json(request, body as string, done);
  });

  const replica = config.replicaId;
  // Once close() began, an answer still in flight closes its connection after it: close() waits for it, and a
  // keep-alive socket left idle afterwards would hold close() up until the keep-alive timeout.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onSend", async (_req, reply) => {
    reply.header("x-replica-id", replica);
    if (closing) reply.header("connection", "close");
  });
  await app.register(problems);
  await app.register(openApi);

  const limits = rateLimits(config);
  const requestKeys = new RequestKeys();
  // Counts rate-limit decisions and the stats queue's jobs for the dashboard's charts.
  const activity = new Activity(STATS_QUEUE);
  await app.register(coordis, {
    url: config.redisUrl,
    prefix: config.prefix,
    metrics: options.registry === undefined ? true : { registry: options.registry },
    observer: activity.observer,
    rateLimit: { rules: limits.apiRules, key: requestKeys.budgetOf, group: "api" },
  });
  const keys = new ApiKeys(await loadApiKeySecret(config.apiKeySecret, app.coordis.redis, config.prefix));
  if (config.apiKeySecret === undefined) {
    const stopKeeping = keepApiKeySecret(
      keys,
      app.coordis.redis,
      config.prefix,
      (message) => app.log.warn(message),
      options.secretCheckMs,
    );
    app.addHook("onClose", async () => stopKeeping());
  }
  requestKeys.verifyWith(keys);
  await app.register(apiKeyCheck, { requestKeys });

  const demo = await createDemo(app.coordis, config, limits, keys, activity);
  await app.register(dashboardRoutes, { demo });
  await app.register(probeRoutes, { demo });
  await app.register(scoreRoutes, { demo });
  await app.register(playerRoutes, { demo });
  await app.register(auditRoutes, { demo });
  await app.register(streamRoutes, { demo });
  await app.register(jobRoutes, { demo, schedule: options.jobs !== false });
  await app.register(queueRoutes, { demo });
  await app.register(adminRoutes, { demo });

  await app.ready();
  await demo.audit.append({ type: "replica-started", replica }).catch(() => {});
  return app;
}
