import { once } from "node:events";
import { connect as connectTcp, type Socket } from "node:net";
import type { RedisClient } from "@coordis/core";
import { buildApp, loadConfig } from "@coordis/demo";
import { PubSub } from "@coordis/pubsub";
import { type RedisServer, startRedis, testPrefix, waitUntil } from "@coordis/testing";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_WAIT } from "./replicas.js";

// A replica's graceful close (SIGTERM in a rolling deploy) while it serves: a request in flight must get its answer
// (the replica used to destroy every connection at once, so a submission waiting on Redis was cut off between its
// writes and its client saw a reset), and close() must still return promptly with event streams open, one of them
// a client that stopped reading with data waiting for it. A Redis of this file's own: it is paused to hold the
// request in flight.
const prefix = testPrefix("demo-shutdown");
let redis: RedisServer;
let client: RedisClient;
let pubsub: PubSub;
let app: FastifyInstance;
let base: string;
let port: number;

beforeAll(async () => {
  redis = await startRedis({ leastPrivilege: true });
  const config = loadConfig({
    REDIS_URL: redis.url,
    COORDIS_PREFIX: prefix,
    REPLICA_ID: "sd",
    LOG_LEVEL: "silent",
    // The stalled client below keeps its data in the replica instead of being disconnected.
    SSE_MAX_BUFFER_BYTES: String(256 * 1024 * 1024),
  });
  app = await buildApp(config, { jobs: false, registry: new Registry() });
  await app.listen({ port: 0, host: "127.0.0.1" });
  port = (app.server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
  client = redis.adminClient();
  pubsub = new PubSub(client, { prefix });
});

afterAll(async () => {
  if (redis?.paused) redis.resume();
  await app?.close();
  await pubsub?.close();
  await redis?.stop();
});

const submit = (playerId: string) =>
  fetch(`${base}/v1/scores`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ playerId, score: 7 }),
  });

/** A stream client that reads its response head and then nothing. */
async function stalledClient(): Promise<Socket> {
  const socket = connectTcp(port, "127.0.0.1");
  await once(socket, "connect");
  socket.write("GET /v1/events HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n");
  await once(socket, "data");
  socket.pause();
  return socket;
}

async function bufferedBytes(): Promise<number> {
  const text = (await app.inject({ method: "GET", url: "/metrics" })).body;
  return Number(/^demo_sse_buffered_bytes (\S+)$/m.exec(text)?.[1] ?? 0);
}

describe("demo graceful close", () => {
  it("answers a request in flight, ends every stream (a stalled one too) and returns", async () => {
    // An idle keep-alive connection, a reader and a stalled client with data waiting in the replica.
    expect((await submit("warm")).status).toBe(201);
    const reader = await fetch(`${base}/v1/events`, { headers: { accept: "text/event-stream" } });
    expect(reader.status).toBe(200);
    const read = reader.text();
    const stalled = await stalledClient();
    const pad = "x".repeat(60_000);
    for (let n = 0; (await bufferedBytes()) === 0; n++) {
      expect(n, "the stalled client's socket buffers never filled").toBeLessThan(2_000);
      await pubsub.publish("events", { type: "big", n, pad });
    }

    // A submission held in flight (Redis paused), then close() begins.
    const arrived = once(app.server, "request");
    redis.pause();
    const answer = submit("in-flight").then(
      async (res) => ({ status: res.status, connection: res.headers.get("connection"), body: await res.text() }),
      (err: Error) => ({ status: 0, connection: null, body: `${err.message}: ${String(err.cause)}` }),
    );
    await arrived;
    const closed = app.close();
    await waitUntil("close() to stop listening", () => !app.server.listening, DEMO_WAIT);
    redis.resume();

    const got = await answer;
    expect(got.status, got.body).toBe(201);
    expect(got.connection).toBe("close");
    await closed;
    // The reader's stream ended, and the stalled client's connection was closed by the replica.
    expect(await read).toContain("event: hello");
    const gone = new Promise<void>((resolve) => {
      stalled.on("close", () => resolve());
      stalled.on("error", () => resolve());
    });
    stalled.resume();
    await gone;
    // The submission ran to its end (its answer comes after its board write): counted on the profile.
    expect(await client.hget(`${prefix}:player:{in-flight}`, "submissions")).toBe("1");
  });
});
