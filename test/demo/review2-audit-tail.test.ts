import { buildApp, loadConfig } from "@coordis/demo";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_WAIT, openSse } from "./replicas.js";

// `/v1/audit/stream` is the audit log's live tail. When Redis restarts without its data the log starts over, and the
// replica's tail reports the gap (GapError) when it reads the new log's first entry. The replica used to restart its
// tail from the log's end after any error, so that first entry (and whatever came during the pause) never reached
// an open stream: an admin action audited right after the restart was missing from every live view.
const token = "review2-audit-tail-token";
let redis: RedisServer;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
  const config = loadConfig({
    REDIS_URL: redis.url,
    COORDIS_PREFIX: testPrefix("demo-audit-tail"),
    REPLICA_ID: "at",
    ADMIN_TOKEN: token,
    LOG_LEVEL: "silent",
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  url = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  await redis?.stop();
});

const issueKey = async (): Promise<string> => {
  const res = await app.inject({
    method: "POST",
    url: "/v1/admin/keys",
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ keys: Array<{ id: string }> }>().keys[0]?.id as string;
};

type AuditFrame = { event: string; data: unknown };
const issued = (id: string) => (e: AuditFrame) =>
  e.event === "audit" && JSON.stringify((e.data as { data?: unknown }).data).includes(`"${id}"`);

describe("demo audit stream across a Redis restart", () => {
  it("streams the entries appended after Redis lost the log, the first one included", async () => {
    const stream = await openSse(`${url}/v1/audit/stream`);
    try {
      const before = await issueKey();
      await stream.next(issued(before));
      await redis.kill();
      await redis.restart();
      await waitUntil(
        "the replica to reach Redis again",
        async () => (await app.inject("/readyz")).statusCode === 200,
        {
          ...DEMO_WAIT,
          timeoutMs: 20_000,
        },
      );
      const first = await issueKey();
      const second = await issueKey();
      await stream.next(issued(first));
      await stream.next(issued(second));
      // In the log's order, each once.
      const audits = stream.events.filter((e) => e.event === "audit");
      expect(audits.filter(issued(first))).toHaveLength(1);
      expect(audits.filter(issued(second))).toHaveLength(1);
      expect(audits.findIndex(issued(first))).toBeLessThan(audits.findIndex(issued(second)));
    } finally {
      stream.close();
    }
  });
});
