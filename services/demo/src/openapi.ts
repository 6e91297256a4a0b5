import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import fp from "fastify-plugin";

/** Security of the public API routes: an issued API key, or none (then the client address is the budget). */
export const API_SECURITY: Array<Record<string, string[]>> = [{ apiKey: [] }, {}];

/** Security of the admin routes: the admin bearer token. */
export const ADMIN_SECURITY: Array<Record<string, string[]>> = [{ admin: [] }];

/** The OpenAPI document of every route registered after it, and its UI at `/docs`. */
export const openApi = fp(
  async (app) => {
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
  },
  { name: "demo-openapi" },
);
