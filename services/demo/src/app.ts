import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { CoordisError, entityKeys, InvalidArgumentError, RedisUnavailableError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { coordis, rateLimitKey } from "@coordis/fastify";
import { type Entry, Leaderboard, type LeaderboardOptions } from "@coordis/leaderboard";
import { PubSub } from "@coordis/pubsub";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { Gauge, type Registry } from "prom-client";
import { ApiKeys, isWellFormedApiKey, loadApiKeySecret } from "./apikeys.js";
import type { DemoConfig } from "./config.js";
import { JOB_NAMES, type JobSpec, recentRuns, scheduleJobs } from "./jobs.js";
import { type Profile, ProfileStore } from "./profiles.js";
import {
  ApiKeyHeaders,
  AroundQuery,
  AuditQuery,
  BoardParams,
  BoardPlayerParams,
  IssueKeysBody,
  KeyParams,
  PlayerParams,
  ProfileBody,
  ScoreBody,
  TopQuery,
} from "./schemas.js";
import { SseHub } from "./sse.js";

/** One entry of the demo's audit log. */
export type AuditEvent =
  | { type: "player-deleted"; playerId: string; replica: string; by: "admin" }
  | { type: "ratelimit-reset"; key: string; replica: string; by: "admin" }
  | { type: "api-key-issued"; ids: string[]; replica: string; by: "admin" }
  | { type: "job-run"; job: string; tick: number; fence: number; replica: string; summary: unknown }
  | { type: "replica-started"; replica: string };

/** What travels on the demo's pub/sub channel (and out of `/v1/events`). */
export type DemoMessage =
  | {
      type: "top10";
      replica: string;
      playerId: string;
      name: string;
      score: number;
      ranks: { daily: number; all: number };
      top: { daily: BoardEntry[]; all: BoardEntry[] };
    }
  | { type: "job"; replica: string; job: string; tick: number; at: number }
  | { type: "player"; replica: string; playerId: string; action: "updated" | "deleted" };

/** A leaderboard entry as the API returns it. */
export interface BoardEntry {
  rank: number;
  playerId: string;
  score: number;
  name: string | null;
}

/** Options of {@link buildApp} beyond the environment's configuration. */
export interface BuildOptions {
  /** The prom-client registry of `/metrics` (tests pass a fresh one per app); default the global registry. */
  registry?: Registry;
  /** Start the cron jobs (default true). */
  jobs?: boolean;
}

const PUBLIC_DIR = new URL("../public/", import.meta.url);
const ASSETS: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};
const CHANNEL = "events";
const PROBLEM = "application/problem+json";

function toEntry(e: Entry<{ name?: string }>): BoardEntry {
  return { rank: e.rank, playerId: e.member, score: e.score, name: e.meta?.name ?? null };
}

function problem(reply: FastifyReply, status: number, title: string, detail: string) {
  return reply.code(status).type(PROBLEM).send({ type: "about:blank", title, status, detail });
}

/**
 * Builds one replica of the game-scores API: routes, schemas, OpenAPI at `/docs`, the dashboard at `/`, SSE
 * streams, cron jobs and the admin endpoints. Call `listen()` on the result; `close()` stops everything it started.
 */
export async function buildApp(config: DemoConfig, options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: { level: config.logLevel },
    bodyLimit: config.bodyLimit,
    // Fastify accepts a hop count too; its types only list the other forms.
    trustProxy: config.trustProxy as boolean | string,
    // Long-lived SSE sockets are ended by the hub; other keep-alive sockets must not hold up close().
    forceCloseConnections: true,
    // Router-level errors (malformed URL, over-long parameter) answer as problem documents too.
    frameworkErrors: (error, _request, reply) => {
      const status = typeof error.statusCode === "number" ? error.statusCode : 400;
      return problem(reply as FastifyReply, status, "Bad Request", error.message);
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const replica = config.replicaId;
  const burstRule = { name: "burst", limit: config.burstLimit, windowMs: config.burstWindowMs };
  const dailyRule = { name: "daily", limit: config.dailyLimit, windowMs: 86_400_000 };
  // API keys are `<id>.<signature>`, signed with a secret every replica shares (see apikeys.ts). A request is
  // budgeted by its key's id only when the key verifies; without a key, by the client address. The onRequest hook
  // below refuses malformed (400) and unverified (401) keys before the limiter runs, so rotating or borrowing key
  // strings never yields a budget, and a bad key never spends one.
  let keys: ApiKeys | undefined;
  const verified = new WeakMap<FastifyRequest, string | null>();
  const keyIdOf = (req: FastifyRequest): string | null => {
    let id = verified.get(req);
    if (id === undefined) {
      const header = req.headers["x-api-key"];
      id = typeof header === "string" && keys !== undefined ? (keys.verify(header) ?? null) : null;
      verified.set(req, id);
    }
    return id;
  };
  const apiKeyOf = (req: FastifyRequest) => {
    const id = keyIdOf(req);
    return id === null ? `ip:${req.ip}` : `key:${id}`;
  };

  app.addHook("onSend", async (_req, reply) => {
    reply.header("x-replica-id", replica);
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation !== undefined) return problem(reply, 400, "Bad Request", error.message);
    if (error instanceof InvalidArgumentError) return problem(reply, 400, "Bad Request", error.message);
    if (error instanceof RedisUnavailableError)
      return problem(reply, 503, "Service Unavailable", "Redis is unavailable");
    const status = typeof error.statusCode === "number" ? error.statusCode : 500;
    if (status >= 400 && status < 500) return problem(reply, status, error.name || "Client Error", error.message);
    request.log.error({ err: error }, "request failed");
    const code = error instanceof CoordisError ? ` (${error.code})` : "";
    return problem(reply, 500, "Internal Server Error", `Something went wrong${code}.`);
  });
  app.setNotFoundHandler((request, reply) =>
    problem(reply, 404, "Not Found", `No route ${request.method} ${request.url}`),
  );

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: "Coordis demo: game scores",
        version: "0.1.0",
        description:
          "Leaderboards, a hash-chained audit log, cron jobs and live streams, shared by every replica through Redis.",
      },
      components: {
        securitySchemes: {
          apiKey: {
            type: "apiKey",
            in: "header",
            name: "x-api-key",
            description:
              "An issued key `<id>.<signature>` (POST /v1/admin/keys; the dashboard gets one per address). Optional: without it the client address is the budget.",
          },
          admin: { type: "http", scheme: "bearer" },
        },
      },
    },
  });
  await app.register(fastifySwaggerUi, { routePrefix: "/docs" });

  await app.register(coordis, {
    url: config.redisUrl,
    prefix: config.prefix,
    metrics: options.registry === undefined ? true : { registry: options.registry },
    rateLimit: { rules: [burstRule, dailyRule], key: apiKeyOf, group: "api" },
  });
  const { redis } = app.coordis;
  keys = new ApiKeys(await loadApiKeySecret(config.apiKeySecret, redis, config.prefix));
  // Every route, limited or not: a present x-api-key must be well formed and verify, checked before any budget.
  app.addHook("onRequest", async (req, reply) => {
    const header = req.headers["x-api-key"];
    if (header === undefined) return;
    if (typeof header !== "string" || !isWellFormedApiKey(header)) {
      return problem(reply, 400, "Bad Request", "x-api-key must be an issued API key: <id>.<43 base64url characters>");
    }
    if (keyIdOf(req) === null) {
      reply.header("www-authenticate", 'ApiKey realm="coordis-demo"');
      return problem(reply, 401, "Unauthorized", "x-api-key is not a key this service issued.");
    }
  });
  const board = new Leaderboard<{ name?: string }>(
    redis,
    "scores",
    app.coordis.options<LeaderboardOptions>({ periods: ["daily", "all"] }),
  );
  const audit = new EventLog<AuditEvent>(redis, "audit", app.coordis.options({ chain: true, maxLen: 10_000 }));
  const pubsub = new PubSub(redis, app.coordis.options());
  const profiles = await ProfileStore.create(app.coordis, config);

  // Both streams share one hub, so the per-address and total caps count a client's streams together.
  const sse = new SseHub({
    maxClients: config.sseMaxClients,
    maxPerAddress: config.sseMaxPerAddress,
    maxBufferBytes: config.sseMaxBufferBytes,
  });
  const registry = app.coordis.metrics?.registry;
  if (registry !== undefined) registerSseMetrics(registry, sse);
  const stop = new AbortController();

  // Pub/sub fan-out: a score submitted on any replica reaches the SSE clients of every replica.
  const unsubscribe = await pubsub.subscribe<DemoMessage>(CHANNEL, async (message) => {
    sse.send("events", message.type, message);
  });

  // One live tail of the audit log per replica, fanned out to its SSE clients (restarted after errors and gaps).
  const tailLoop = (async () => {
    while (!stop.signal.aborted) {
      try {
        for await (const entry of audit.tail({ from: "end", signal: stop.signal })) sse.send("audit", "audit", entry);
      } catch {
        if (!stop.signal.aborted) await sleep(500).catch(() => {});
      }
    }
  })();

  const jobs: JobSpec[] = [
    {
      name: "snapshot-top10",
      everyMs: config.snapshotEveryMs,
      run: async (ctx) => {
        const top = (await board.top(10, { period: "all" })).map(toEntry);
        await redis.set(entityKeys(config.prefix, "snapshot", "top10").base, JSON.stringify({ at: ctx.tick, top }));
        await audit.append(
          {
            type: "job-run",
            job: ctx.job,
            tick: ctx.tick,
            fence: ctx.fence,
            replica,
            summary: { entries: top.length },
          },
          { idempotencyKey: `job:${ctx.job}:${ctx.tick}` },
        );
        await pubsub.publish(CHANNEL, { type: "job", replica, job: ctx.job, tick: ctx.tick, at: Date.now() });
      },
    },
    {
      name: "rollup-stats",
      everyMs: config.rollupEveryMs,
      run: async (ctx) => {
        const [all, daily] = await Promise.all([board.count({ period: "all" }), board.count({ period: "daily" })]);
        await audit.append(
          {
            type: "job-run",
            job: ctx.job,
            tick: ctx.tick,
            fence: ctx.fence,
            replica,
            summary: { players: all, today: daily },
          },
          { idempotencyKey: `job:${ctx.job}:${ctx.tick}` },
        );
        await pubsub.publish(CHANNEL, { type: "job", replica, job: ctx.job, tick: ctx.tick, at: Date.now() });
      },
    },
  ];
  const stopJobs =
    options.jobs === false
      ? () => {}
      : scheduleJobs(redis, jobs, {
          owner: replica,
          prefix: config.prefix,
          observer: app.coordis.observer,
          onError: (job, err) => app.log.warn({ err, job }, "job failed"),
        });

  app.addHook("preClose", async () => {
    stopJobs();
    sse.closeAll();
  });
  app.coordis.onClose(async () => {
    stop.abort();
    await tailLoop;
    await unsubscribe().catch(() => {});
    await pubsub.close();
    await profiles.close();
  });

  // Admin: a bearer token from the environment, compared in constant time (hashes of equal length).
  const expected =
    config.adminToken === undefined ? undefined : createHash("sha256").update(config.adminToken).digest();
  const requireAdmin = async (request: FastifyRequest, reply: FastifyReply) => {
    const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? "");
    const given = createHash("sha256")
      .update(match?.[1] ?? "")
      .digest();
    const ok = expected !== undefined && match !== null && timingSafeEqual(given, expected);
    if (!ok) {
      reply.header("www-authenticate", 'Bearer realm="coordis-demo"');
      return problem(
        reply,
        401,
        "Unauthorized",
        expected === undefined
          ? "Admin endpoints are disabled: ADMIN_TOKEN is not set."
          : "A valid admin bearer token is required.",
      );
    }
  };
  const adminLimit = {
    rules: [{ name: "admin", limit: 60, windowMs: 60_000 }],
    group: "admin",
    key: (r: FastifyRequest) => r.ip,
  };
  const api = { coordis: { rateLimit: true } };
  // Opening a stream is limited per address too (each open of the audit stream reads the log).
  const streamLimit = {
    rules: [{ name: "streams", limit: 60, windowMs: 60_000 }],
    group: "streams",
    key: (r: FastifyRequest) => r.ip,
  };
  const apiSecurity: Array<Record<string, string[]>> = [{ apiKey: [] }, {}];

  // ---- pages and probes
  const page = readFileSync(new URL("index.html", PUBLIC_DIR), "utf8");
  app.get("/", { schema: { hide: true } }, async (_req, reply) =>
    reply.type("text/html; charset=utf-8").send(page.replaceAll("{{REPLICA_ID}}", escapeHtml(replica))),
  );
  const assets = new Map(Object.keys(ASSETS).map((f) => [f, readFileSync(new URL(f, PUBLIC_DIR), "utf8")]));
  app.get<{ Params: { file: string } }>(
    "/assets/:file",
    {
      schema: {
        hide: true,
        params: { type: "object", properties: { file: { type: "string", enum: Object.keys(ASSETS) } } },
      },
    },
    async (req, reply) => reply.type(ASSETS[req.params.file] as string).send(assets.get(req.params.file)),
  );
  app.get("/healthz", { schema: { tags: ["probes"], summary: "The process is up" } }, async () => ({
    status: "ok",
    replica,
  }));
  app.get("/readyz", { schema: { tags: ["probes"], summary: "Redis answers within 1 s" } }, async (_req, reply) => {
    try {
      const pong = await Promise.race([redis.ping(), sleep(1_000).then(() => "timeout")]);
      if (pong === "PONG") return { status: "ready", replica };
    } catch {
      // fall through
    }
    return problem(reply, 503, "Service Unavailable", "Redis is not reachable");
  });

  // ---- public API (rate limited per API key: two rules, checked atomically across replicas)
  app.post(
    "/v1/scores",
    {
      config: api,
      schema: {
        tags: ["scores"],
        summary: "Submit a score to the daily and all-time boards",
        body: ScoreBody,
        headers: ApiKeyHeaders,
        security: apiSecurity,
      },
    },
    async (req, reply) => {
      const { playerId, score, name } = req.body;
      const profile = await profiles.recordSubmission(playerId, name);
      const result = await board.submit(playerId, score, { meta: { name: profile.name } });
      const ranks = { daily: result.periods.daily?.rank ?? 0, all: result.periods.all?.rank ?? 0 };
      const updated = result.periods.daily?.updated === true || result.periods.all?.updated === true;
      if (updated && (ranks.daily <= 10 || ranks.all <= 10)) {
        const [daily, all] = await Promise.all([board.top(10, { period: "daily" }), board.top(10, { period: "all" })]);
        await pubsub.publish(CHANNEL, {
          type: "top10",
          replica,
          playerId,
          name: profile.name,
          score,
          ranks,
          top: { daily: daily.map(toEntry), all: all.map(toEntry) },
        } satisfies DemoMessage);
      }
      await profiles.invalidate(playerId);
      return reply.code(201).send({
        playerId,
        score,
        best: { daily: result.periods.daily?.score ?? score, all: result.periods.all?.score ?? score },
        ranks,
        replica,
      });
    },
  );

  app.get(
    "/v1/leaderboards/:board/top",
    {
      config: api,
      schema: {
        tags: ["leaderboards"],
        summary: "Top N of a board",
        params: BoardParams,
        querystring: TopQuery,
        headers: ApiKeyHeaders,
        security: apiSecurity,
      },
    },
    async (req) => ({
      board: req.params.board,
      entries: (await board.top(req.query.n ?? 10, { period: req.params.board })).map(toEntry),
      replica,
    }),
  );

  app.get(
    "/v1/leaderboards/:board/players/:id",
    {
      config: api,
      schema: {
        tags: ["leaderboards"],
        summary: "A player's rank and neighbours",
        params: BoardPlayerParams,
        querystring: AroundQuery,
        headers: ApiKeyHeaders,
        security: apiSecurity,
      },
    },
    async (req, reply) => {
      const period = req.params.board;
      const standing = await board.rank(req.params.id, { period });
      if (standing === null)
        return problem(reply, 404, "Not Found", `Player ${req.params.id} is not on the ${period} board`);
      const neighbours = await board.around(req.params.id, req.query.radius ?? 2, { period });
      return { board: period, player: toEntry(standing), count: standing.count, neighbours: neighbours.map(toEntry) };
    },
  );

  app.get(
    "/v1/players/:id",
    {
      config: api,
      schema: {
        tags: ["players"],
        summary: "A player's profile (two-tier cache; loadedBy/loadedAt show the copy)",
        params: PlayerParams,
        headers: ApiKeyHeaders,
        security: apiSecurity,
      },
    },
    async (req, reply) => {
      const profile = await profiles.get(req.params.id, () => loadProfile(req.params.id));
      if (profile === null) return problem(reply, 404, "Not Found", `No player ${req.params.id}`);
      return profile;
    },
  );

  const loadProfile = async (id: string): Promise<Profile | null> => {
    const stored = await profiles.read(id);
    if (stored === null) return null;
    const [all, daily] = await Promise.all([board.rank(id, { period: "all" }), board.rank(id, { period: "daily" })]);
    return {
      ...stored,
      best: all?.score ?? null,
      ranks: { all: all?.rank ?? null, daily: daily?.rank ?? null },
      loadedBy: replica,
      loadedAt: Date.now(),
    };
  };

  app.put(
    "/v1/players/:id",
    {
      config: api,
      schema: {
        tags: ["players"],
        summary: "Rename a player",
        params: PlayerParams,
        body: ProfileBody,
        headers: ApiKeyHeaders,
        security: apiSecurity,
      },
    },
    async (req, reply) => {
      const ok = await profiles.rename(req.params.id, req.body.name);
      if (!ok) return problem(reply, 404, "Not Found", `No player ${req.params.id}`);
      await profiles.invalidate(req.params.id);
      return loadProfile(req.params.id);
    },
  );

  app.get(
    "/v1/audit",
    {
      config: api,
      schema: {
        tags: ["audit"],
        summary: "The audit log, newest first, paged by cursor",
        querystring: AuditQuery,
        headers: ApiKeyHeaders,
        security: apiSecurity,
      },
    },
    async (req) => {
      const page = await audit.read({
        reverse: true,
        limit: req.query.limit ?? 20,
        ...(req.query.cursor === undefined ? {} : { before: req.query.cursor }),
      });
      return { entries: page.entries, ...(page.next === undefined ? {} : { next: page.next }) };
    },
  );

  // ---- live streams (capped per address and per replica; slow readers are disconnected; see SseHub)
  app.get(
    "/v1/events",
    {
      config: { coordis: { rateLimit: streamLimit } },
      schema: { tags: ["streams"], summary: "SSE: new top-10 entries, job runs, player changes" },
    },
    async (req, reply) => {
      if (!sse.open(req, reply, "events", { "x-replica-id": replica }, [{ event: "hello", data: { replica } }]))
        return reply;
    },
  );
  app.get(
    "/v1/audit/stream",
    {
      config: { coordis: { rateLimit: streamLimit } },
      schema: { tags: ["streams"], summary: "SSE: the audit log's live tail" },
    },
    async (req, reply) => {
      const recent = await audit.read({ reverse: true, limit: 20 });
      const initial = recent.entries.reverse().map((data) => ({ event: "audit", data }));
      if (!sse.open(req, reply, "audit", { "x-replica-id": replica }, initial)) return reply;
    },
  );

  // ---- dashboard support (not rate limited)
  app.get(
    "/v1/dashboard",
    { schema: { tags: ["dashboard"], summary: "Everything the dashboard shows, at once" } },
    async (req) => {
      // The caller's own dashboard key: the same for every load from one address, unknown to other addresses.
      const key = (keys as ApiKeys).forAddress(req.ip);
      const id = key.slice(0, key.indexOf("."));
      const [daily, all, jobRuns, recent, limit] = await Promise.all([
        board.top(10, { period: "daily" }),
        board.top(10, { period: "all" }),
        recentRuns(redis, config.prefix, 12),
        audit.read({ reverse: true, limit: 20 }),
        app.coordis.peekRateLimit(`key:${id}`, { group: "api" }),
      ]);
      return {
        replica,
        top: { daily: daily.map(toEntry), all: all.map(toEntry) },
        jobs: jobRuns,
        jobNames: JOB_NAMES,
        audit: recent.entries,
        apiKey: { id, key },
        ratelimit: { key: id, allowed: limit.allowed, rules: limit.rules },
      };
    },
  );
  app.get(
    "/v1/jobs",
    { schema: { tags: ["dashboard"], summary: "Recent cron job runs and the replica of each" } },
    async () => ({
      runs: await recentRuns(redis, config.prefix, 50),
    }),
  );
  app.get(
    "/v1/ratelimit/:key",
    {
      schema: {
        tags: ["dashboard"],
        summary: "An API key's rate-limit state by key id (does not consume)",
        params: KeyParams,
      },
    },
    async (req) => {
      const d = await app.coordis.peekRateLimit(`key:${req.params.key}`, { group: "api" });
      return { key: req.params.key, allowed: d.allowed, rules: d.rules };
    },
  );

  // ---- admin
  app.delete(
    "/v1/players/:id",
    {
      config: { coordis: { rateLimit: adminLimit } },
      preHandler: requireAdmin,
      schema: {
        tags: ["admin"],
        summary: "Delete a player everywhere",
        params: PlayerParams,
        security: [{ admin: [] }],
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const [removed, existed] = await Promise.all([board.remove(id), profiles.remove(id)]);
      if (!removed && !existed) return problem(reply, 404, "Not Found", `No player ${id}`);
      await audit.append({ type: "player-deleted", playerId: id, replica, by: "admin" });
      await profiles.invalidate(id);
      await pubsub.publish(CHANNEL, { type: "player", replica, playerId: id, action: "deleted" } satisfies DemoMessage);
      return reply.code(204).send();
    },
  );
  app.post(
    "/v1/admin/ratelimit/:key/reset",
    {
      config: { coordis: { rateLimit: adminLimit } },
      preHandler: requireAdmin,
      schema: {
        tags: ["admin"],
        summary: "Refill an API key's budget (by key id)",
        params: KeyParams,
        security: [{ admin: [] }],
      },
    },
    async (req, reply) => {
      await app.coordis.rateLimiter([burstRule, dailyRule]).reset(rateLimitKey("api", `key:${req.params.key}`));
      await audit.append({ type: "ratelimit-reset", key: req.params.key, replica, by: "admin" });
      return reply.code(204).send();
    },
  );
  app.post(
    "/v1/admin/keys",
    {
      config: { coordis: { rateLimit: adminLimit } },
      preHandler: requireAdmin,
      schema: {
        tags: ["admin"],
        summary: "Issue API keys (`<id>.<signature>`; the id names the key's budget)",
        body: IssueKeysBody,
        security: [{ admin: [] }],
      },
    },
    async (req, reply) => {
      const issued = Array.from({ length: req.body?.count ?? 1 }, () => {
        const key = (keys as ApiKeys).issue();
        return { id: key.slice(0, key.indexOf(".")), key };
      });
      await audit.append({ type: "api-key-issued", ids: issued.map((k) => k.id), replica, by: "admin" });
      return reply.code(201).send({ keys: issued });
    },
  );
  app.get(
    "/v1/audit/verify",
    {
      config: { coordis: { rateLimit: adminLimit } },
      preHandler: requireAdmin,
      schema: { tags: ["admin"], summary: "Check the audit log's hash chain", security: [{ admin: [] }] },
    },
    async () => audit.verify(),
  );

  await app.ready();
  await audit.append({ type: "replica-started", replica }).catch(() => {});
  return app;
}

/** The hub's counters as `demo_sse_*` gauges of `registry` (read at scrape time). */
function registerSseMetrics(registry: Registry, hub: SseHub): void {
  const gauge = (name: string, help: string, labelNames: string[], read: (g: Gauge) => void) => {
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        read(this);
      },
    });
  };
  gauge("demo_sse_clients", "Open event streams of this replica", ["channel"], (g) => {
    for (const channel of ["events", "audit"]) g.set({ channel }, hub.size(channel));
  });
  gauge("demo_sse_buffered_bytes", "Bytes waiting in this replica for stream clients", [], (g) =>
    g.set(hub.stats().bufferedBytes),
  );
  gauge("demo_sse_peak_client_buffer_bytes", "Most bytes one stream client ever had waiting", [], (g) =>
    g.set(hub.stats().peakClientBufferBytes),
  );
  gauge("demo_sse_slow_disconnects", "Stream clients disconnected for not reading", [], (g) =>
    g.set(hub.stats().slowDisconnects),
  );
  gauge("demo_sse_refused", "Streams refused over a cap", ["cap"], (g) => {
    const { refused } = hub.stats();
    g.set({ cap: "per-address" }, refused.perAddress);
    g.set({ cap: "total" }, refused.total);
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
