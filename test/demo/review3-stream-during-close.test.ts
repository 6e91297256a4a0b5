import { buildApp, loadConfig } from "@coordis/demo";
import { type RedisServer, startRedis, testPrefix, waitUntil, withDeadline } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_WAIT } from "./replicas.js";

// An event stream whose request was in flight when the replica began to close (the audit stream reads its initial
// entries from Redis first; the open's rate limit asks Redis too) opened after the hub had ended every stream: it was
// registered and never ended, so close() waited for that client for as long as it stayed (a SIGTERM'd replica until
// its 5 s forced exit). A Redis of this file's own, paused to hold the request in flight.
let redis: RedisServer;
let app: FastifyInstance;
let base: string;

/** A replica on this file's Redis (each case closes its own). */
async function start(): Promise<void> {
  const config = loadConfig({
    REDIS_URL: redis.url,
    COORDIS_PREFIX: testPrefix("demo-stream-close"),
    REPLICA_ID: "sc",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  await app.listen({ port: 0, host: "127.0.0.1" });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
});

afterAll(async () => {
  if (redis?.paused) redis.resume();
  if (app?.server.listening) await app.close();
  await redis?.stop();
});

describe("demo event streams during close", () => {
  it.each(["/v1/audit/stream", "/v1/events"])(
    "%s requested before close() is refused, not opened after the streams ended",
    async (path) => {
      await start();
      const abort = new AbortController();
      try {
        const arrived = new Promise<void>((resolve) => app.server.once("request", () => resolve()));
        redis.pause();
        const response = fetch(`${base}${path}`, { signal: abort.signal, headers: { accept: "text/event-stream" } });
        response.catch(() => {});
        await arrived;
        const closed = app.close();
        await waitUntil("close() to stop listening", () => !app.server.listening, DEMO_WAIT);
        redis.resume();
        // The client stays: the replica must end what it answers, not wait for the client to leave.
        const res = await withDeadline(response, 10_000, "the stream request to be answered");
        const body = await withDeadline(res.text(), 10_000, "the answer to end");
        await withDeadline(closed, 10_000, "close() to return with the client still connected");
        // Refused like a full replica (an EventSource retries, and reaches another replica).
        expect(res.status, body).toBe(503);
        expect(res.headers.get("content-type")).toContain("application/problem+json");
        expect(res.headers.get("retry-after")).toBe("5");
      } finally {
        abort.abort();
      }
    },
  );
});
