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
import type { Registry } from "prom-client";
import type { DemoConfig } from "./config.js";
import { JOB_NAMES, type JobSpec, recentRuns, scheduleJobs } from "./jobs.js";
import { type Profile, ProfileStore } from "./profiles.js";
import {
  ApiKeyHeaders,
  AroundQuery,
  AuditQuery,
  BoardParams,
  BoardPlayerParams,
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
  const apiKeyOf = (req: FastifyRequest) => {
    const header = req.headers["x-api-key"];
    return typeof header === "string" && header !== "" ? `key:${header}` : `ip:${req.ip}`;
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
          apiKey: { type: "apiKey", in: "header", name: "x-api-key" },
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
  const board = new Leaderboard<{ name?: string }>(
    redis,
    "scores",
    app.coordis.options<LeaderboardOptions>({ periods: ["daily", "all"] }),
  );
  const audit = new EventLog<AuditEvent>(redis, "audit", app.coordis.options({ chain: true, maxLen: 10_000 }));
  const pubsub = new PubSub(redis, app.coordis.options());
  const profiles = await ProfileStore.create(app.coordis, config);

  const events = new SseHub();
  const auditStream = new SseHub();
  const stop = new AbortController();

  // Pub/sub fan-out: a score submitted on any replica reaches the SSE clients of every replica.
  const unsubscribe = await pubsub.subscribe<DemoMessage>(CHANNEL, async (message) => {
    events.send(message.type, message);
  });

  // One live tail of the audit log per replica, fanned out to its SSE clients (restarted after errors and gaps).
  const tailLoop = (async () => {
    while (!stop.signal.aborted) {
      try {
        for await (const entry of audit.tail({ from: "end", signal: stop.signal })) auditStream.send("audit", entry);
      } catch {
        if (!stop.signal.aborted) await sleep(500).catch(() => {});
      }
    }
  })();

  // The dashboard's rate-limit panel: this replica pushes the demo key's state once a second while anyone watches.
  const rateTimer = setInterval(async () => {
    if (events.size === 0) return;
    try {
      const d = await app.coordis.peekRateLimit(`key:${config.demoApiKey}`, { group: "api" });
      events.send("ratelimit", { key: config.demoApiKey, allowed: d.allowed, rules: d.rules, replica });
    } catch {
      // Redis unavailable: the next tick tries again.
    }
  }, 1_000);
  rateTimer.unref();

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
    clearInterval(rateTimer);
    events.closeAll();
    auditStream.closeAll();
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
  const api = { rateLimit: true } as const;

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
      schema: { tags: ["leaderboards"], summary: "Top N of a board", params: BoardParams, querystring: TopQuery },
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
      schema: { tags: ["players"], summary: "Rename a player", params: PlayerParams, body: ProfileBody },
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
      schema: { tags: ["audit"], summary: "The audit log, newest first, paged by cursor", querystring: AuditQuery },
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

  // ---- live streams (not rate limited: one long request each)
  app.get(
    "/v1/events",
    { schema: { tags: ["streams"], summary: "SSE: new top-10 entries, job runs, rate-limit state" } },
    async (req, reply) => {
      events.open(req, reply, { "x-replica-id": replica }, [{ event: "hello", data: { replica } }]);
    },
  );
  app.get(
    "/v1/audit/stream",
    { schema: { tags: ["streams"], summary: "SSE: the audit log's live tail" } },
    async (req, reply) => {
      const recent = await audit.read({ reverse: true, limit: 20 });
      auditStream.open(
        req,
        reply,
        { "x-replica-id": replica },
        recent.entries.reverse().map((data) => ({ event: "audit", data })),
      );
    },
  );

  // ---- dashboard support (not rate limited)
  app.get(
    "/v1/dashboard",
    { schema: { tags: ["dashboard"], summary: "Everything the dashboard shows, at once" } },
    async () => {
      const [daily, all, jobRuns, recent, limit] = await Promise.all([
        board.top(10, { period: "daily" }),
        board.top(10, { period: "all" }),
        recentRuns(redis, config.prefix, 12),
        audit.read({ reverse: true, limit: 20 }),
        app.coordis.peekRateLimit(`key:${config.demoApiKey}`, { group: "api" }),
      ]);
      return {
        replica,
        top: { daily: daily.map(toEntry), all: all.map(toEntry) },
        jobs: jobRuns,
        jobNames: JOB_NAMES,
        audit: recent.entries,
        ratelimit: { key: config.demoApiKey, allowed: limit.allowed, rules: limit.rules },
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
    { schema: { tags: ["dashboard"], summary: "An API key's rate-limit state (does not consume)", params: KeyParams } },
    async (req) => {
      const d = await app.coordis.peekRateLimit(`key:${req.params.key}`, { group: "api" });
      return { key: req.params.key, allowed: d.allowed, rules: d.rules };
    },
  );

  // ---- admin
  app.delete(
    "/v1/players/:id",
    {
      config: { rateLimit: adminLimit },
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
      config: { rateLimit: adminLimit },
      preHandler: requireAdmin,
      schema: { tags: ["admin"], summary: "Refill an API key's budget", params: KeyParams, security: [{ admin: [] }] },
    },
    async (req, reply) => {
      await app.coordis.rateLimiter([burstRule, dailyRule]).reset(rateLimitKey("api", `key:${req.params.key}`));
      await audit.append({ type: "ratelimit-reset", key: req.params.key, replica, by: "admin" });
      return reply.code(204).send();
    },
  );
  app.get(
    "/v1/audit/verify",
    {
      config: { rateLimit: adminLimit },
      preHandler: requireAdmin,
      schema: { tags: ["admin"], summary: "Check the audit log's hash chain", security: [{ admin: [] }] },
    },
    async () => audit.verify(),
  );

  await app.ready();
  await audit.append({ type: "replica-started", replica }).catch(() => {});
  return app;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
