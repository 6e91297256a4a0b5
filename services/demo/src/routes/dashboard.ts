import { readFileSync } from "node:fs";
import { addressKey } from "@coordis/fastify";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { JOB_NAMES, recentRuns } from "../jobs.js";
import { toEntry } from "../model.js";
import { KeyParams } from "../schemas.js";
import type { Demo } from "../services.js";

const PUBLIC_DIR = new URL("../../public/", import.meta.url);
const ASSETS: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
};

/**
 * The dashboard: its page at `/` (with this replica's id), its assets, and the data it polls (not rate limited):
 * everything at once at `/v1/dashboard`, with the caller's own API key, and an API key's budget without consuming.
 */
export const dashboardRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { config, replica, board, audit, keys } = demo;
  const { redis } = app.coordis;

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

  app.get(
    "/v1/dashboard",
    {
      config: demo.limits.dashboard,
      schema: { tags: ["dashboard"], summary: "Everything the dashboard shows, at once" },
    },
    async (req) => {
      // The caller's own dashboard key: the same for every load from one address, unknown to other addresses.
      const key = keys.forAddress(addressKey(req.ip));
      const id = key.slice(0, key.indexOf("."));
      const [daily, all, jobRuns, recent, limit] = await Promise.all([
        board.top(10, { period: "daily" }),
        board.top(10, { period: "all" }),
        recentRuns(redis, config.prefix, 12),
        // An entry failing the chain's check is left out, as the audit stream leaves it out (`/v1/audit/verify`).
        audit.read({ reverse: true, limit: 20, unverified: "skip" }),
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
    "/v1/ratelimit/:key",
    {
      config: demo.limits.dashboard,
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
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
