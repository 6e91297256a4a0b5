/**
 * The Fastify server of the HTTP scenarios (`http.ts` forks one per row): one route, `GET /r`, limited by nothing,
 * by @fastify/rate-limit with its Redis store, or by @coordis/fastify (1 or 2 rules, batched or not). The key is the
 * `x-key` request header for both limiters. It answers `{ port }` over IPC once listening, `{ cpuUs }` (its CPU time so
 * far) to "cpu", and closes on "stop".
 *
 * Environment: BENCH_HTTP_MODE (plain | fastify-rate-limit | coordis), BENCH_HTTP_RULES (1 | 2),
 * BENCH_HTTP_BATCH (false | true | auto), BENCH_REDIS_URL, BENCH_PREFIX.
 */
import { safeRedisOptions } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import fastifyRateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyRequest } from "fastify";
import { Redis } from "ioredis";

// Limits far above what a run can consume: every request is admitted, so the figure is the cost of a decision.
const LIMIT = 1_000_000_000;
const WINDOW_MS = 60_000;

const mode = process.env.BENCH_HTTP_MODE ?? "plain";
const ruleCount = Number(process.env.BENCH_HTTP_RULES ?? "1");
const batchEnv = process.env.BENCH_HTTP_BATCH ?? "false";
const batch = batchEnv === "auto" ? "auto" : batchEnv === "true";
const url = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = process.env.BENCH_PREFIX ?? "bench-http";

const keyOf = (req: FastifyRequest) => String(req.headers["x-key"] ?? req.ip);

async function main() {
  const app = Fastify({ logger: false });
  // The same client settings for both limiters (Coordis refuses a client without them).
  const redis = mode === "plain" ? undefined : new Redis(url, { ...safeRedisOptions });
  let config: Record<string, unknown> = {};
  if (mode === "fastify-rate-limit") {
    await app.register(fastifyRateLimit, {
      global: false,
      redis,
      nameSpace: `${prefix}:frl:`,
      keyGenerator: keyOf,
    });
    config = { rateLimit: { max: LIMIT, timeWindow: WINDOW_MS } };
  } else if (mode === "coordis") {
    const rules = [
      { name: "burst", limit: LIMIT, windowMs: WINDOW_MS },
      { name: "daily", limit: LIMIT, windowMs: 86_400_000 },
    ].slice(0, ruleCount);
    await app.register(coordis, { redis, prefix, rateLimit: { rules, key: keyOf, batch } });
    config = { coordis: { rateLimit: true } };
  }
  app.get("/r", { config }, async () => ({ ok: true }));
  await app.listen({ port: 0, host: "127.0.0.1" });
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  process.on("message", (message) => {
    if (message === "cpu") {
      const { user, system } = process.cpuUsage();
      process.send?.({ cpuUs: user + system });
      return;
    }
    if (message !== "stop") return;
    app
      .close()
      .then(() => redis?.quit())
      .finally(() => process.exit(0));
  });
  process.send?.({ port });
}

main().catch((err) => {
  process.send?.({ error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
