import { buildApp, loadConfig } from "@coordis/demo";
import { testPrefix, withDeadline } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

// Fastify answers HEAD on every GET route, the event streams included. A HEAD of a stream must answer with the
// stream's headers and end (RFC 9110: the GET's headers, no body); a response without a body sends its headers only
// when it ends, so a HEAD taken for a stream never answered at all and held a stream slot of its address meanwhile.
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  const config = loadConfig({
    REDIS_URL: inject("coordisRedisUrl"),
    COORDIS_PREFIX: testPrefix("demo-sse-head"),
    REPLICA_ID: "head",
    SSE_MAX_PER_ADDRESS: "2",
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  await app.listen({ port: 0, host: "127.0.0.1" });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await app?.close();
});

const sseClients = async (): Promise<number> => {
  const text = await (await fetch(`${base}/metrics`)).text();
  return [...text.matchAll(/^demo_sse_clients\{channel="[a-z]+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
};

describe("demo event streams answer HEAD", () => {
  it.each(["/v1/events", "/v1/audit/stream"])("HEAD %s answers the stream's headers and ends", async (path) => {
    for (let i = 0; i < 3; i++) {
      // More HEADs than the address may hold streams: none of them keeps a slot.
      const res = await withDeadline(fetch(`${base}${path}`, { method: "HEAD" }), 3_000, `HEAD ${path} to answer`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(res.headers.get("x-replica-id")).toBe("head");
      expect(await withDeadline(res.text(), 3_000, `HEAD ${path} to end`)).toBe("");
    }
    expect(await sseClients()).toBe(0);
  });
});
